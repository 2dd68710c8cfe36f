"""HTTP caching of the answers that cannot change: a /sample request that fixes its latents (a
seed, latents or w) gives the same bytes every time from the same model files on the same engine
(tests/service/test_doors.py holds every door to that). So:

- `ETag`: a strong validator, the hash of the model's card (every file's sha256), the engine that
  runs it, the draw bound of a filtered request, and the request in canonical form. GET computes
  it before any graph runs, so a matching `If-None-Match` answers 304 at once; POST only once its
  answer has succeeded (routes.py), since a failed request needs none.
- `Cache-Control`: `no-store` for a request without fixed latents (a fresh seed every time);
  `public, max-age=31536000, immutable` for a fixed request that pins `version` (the name may
  move to other files; a pinned version never answers anything else, it answers 409 once gone);
  `no-cache` (store, but revalidate) for a fixed request that does not pin it; and `private` in
  place of `public` when the server requires a token, since a shared cache that does not key on
  the caller's credential would hand one caller's answer to another, unless the operator says
  the cache keys on it (GANSERVE_SHARED_CACHE_KEYS_TOKEN).

POST /sample carries the same headers (a client cache may keep them) but never answers 304: for
methods other than GET and HEAD, HTTP answers a matched If-None-Match with 412 instead, which no
client wants here. GET /sample is the cacheable door: the scalar fields as query parameters.
"""

from __future__ import annotations

import hashlib
import json
from typing import Optional

from service.core.schemas import SampleRequest
from service.runtime.model import LoadedModel

YEAR_S = 365 * 24 * 3600
# SampleRequest's fields a query string cannot carry (arrays and objects): GET /sample refuses
# them, pointing to POST /sample's JSON body. The one list: GET /sample's query parameters
# (routes.py reads them, openapi.py documents them) are every other field of the schema.
BODY_ONLY = ("latents", "w", "edit", "mix")
QUERY_FIELDS = tuple(name for name in SampleRequest.model_fields if name not in BODY_ONLY)


def fixed(req: SampleRequest) -> bool:
    """Whether the request's latents are fixed, so its answer is."""
    return req.seed is not None or req.latents is not None or req.w is not None


def etag(model: LoadedModel, req: SampleRequest, max_draws_factor: int) -> Optional[str]:
    """The strong validator of a fixed request's answer; None for one that is drawn afresh."""
    if not fixed(req):
        return None
    canonical = req.model_dump(mode="json", exclude_defaults=True, exclude={"model"})
    filtered = req.min_realness is not None or req.drs
    parts = {
        "card": model.card_digest,  # computed once per loaded model
        "model": model.name,
        "engine": f"{model.backend}/{model.provider}",
        "draw_bound": max_draws_factor if filtered else None,
        "request": canonical,
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f'"{digest[:40]}"'


def cache_control(req: SampleRequest, token_required: bool, cache_keys_token: bool) -> str:
    if not fixed(req):
        return "no-store"
    scope = "private" if token_required and not cache_keys_token else "public"
    if req.version is not None:
        return f"{scope}, max-age={YEAR_S}, immutable"
    return f"{scope}, no-cache"


def matches(if_none_match: Optional[str], tag: Optional[str]) -> bool:
    """If-None-Match against our tag, by weak comparison as RFC 9110 section 13.1.2 asks."""
    if not if_none_match or tag is None:
        return False
    if if_none_match.strip() == "*":
        return True
    ours = tag.removeprefix("W/")
    return any(part.strip().removeprefix("W/") == ours for part in if_none_match.split(","))
