"""HTTP caching of the answers that cannot change: a /sample request that fixes its latents (a
seed, latents or w) gives the same bytes every time from the same model files on the same engine
(tests/service/test_doors.py holds every door to that). So:

- `ETag`: a strong validator, the hash of the model's card (every file's sha256), the engine that
  runs it, the draw bound of a filtered request, and the request in canonical form. Computed
  before any graph runs, so `GET /sample` with a matching `If-None-Match` answers 304 at once.
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
_card_digests: dict[int, tuple[object, str]] = {}  # id(card) -> (card, digest): cards are immutable


def fixed(req: SampleRequest) -> bool:
    """Whether the request's latents are fixed, so its answer is."""
    return req.seed is not None or req.latents is not None or req.w is not None


def _card_digest(model: LoadedModel) -> str:
    entry = _card_digests.get(id(model.card))
    if entry is None or entry[0] is not model.card:
        entry = (model.card, hashlib.sha256(model.card.model_dump_json().encode()).hexdigest())
        _card_digests[id(model.card)] = entry
    return entry[1]


def etag(model: LoadedModel, req: SampleRequest, max_draws_factor: int) -> Optional[str]:
    """The strong validator of a fixed request's answer; None for one that is drawn afresh."""
    if not fixed(req):
        return None
    canonical = req.model_dump(mode="json", exclude_defaults=True, exclude={"model"})
    filtered = req.min_realness is not None or req.drs
    parts = {
        "card": _card_digest(model),
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
