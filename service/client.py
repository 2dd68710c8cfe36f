"""A small typed Python client for ganserve's REST API: the one HTTP client in the code (the
dataset generator's HTTP source uses it too).

    from service.client import Client

    with Client("http://localhost:3000", token="...") as gan:
        got = gan.sample(16, seed=7)          # Samples: .samples (16, 1, 28, 28) float32, .seed, .version
        scores = gan.score(got.samples)       # Scores: .realness, .logit
        path = gan.interpolate(seeds=(1, 2), steps=8)
        listing = gan.models()                # GET /models as sent

Samples travel as .npy (float32 bytes, no text round trip), their metadata in the answer's
headers. One or several replicas: requests go round-robin, and a failed one (connection error,
timeout, 5xx, 429) is retried on the next replica after an exponential backoff with jitter, or
after the server's Retry-After when it sends one (capped at `max_backoff_s`). An answer with
Retry-After (admission control's 503, a 429) is a busy server, not a failure: waited out without
using up a retry, up to `max_overloaded` times per request. A 4xx other than 429 is the caller's
mistake: raised at once as ClientError with the server's `error` line.

`sample(..., cacheable=True)` asks by `GET /sample` with the fields in the query, the door a
cache in front may answer (docs/API.md, "GET /sample and caching"; a shared cache keeps an answer
with a seed and a pinned `version`), when the request can be one: every field a scalar, `labels`
one class or a list of several, the URL at most MAX_GET_URL_CHARS. Otherwise it goes as POST.
The answer is the same bytes either way.
"""

from __future__ import annotations

import email.utils
import io
import itertools
import math
import numbers
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import httpx
import numpy as np

NPY_MEDIA_TYPE = "application/x-npy"
MAX_BACKOFF_S = 30.0
# Busy answers (with Retry-After) waited out per request before giving up: at the server's default
# Retry-After of 2 s, about ten minutes of a server too busy to take the request.
MAX_OVERLOADED = 300
# A GET carries its request in the URL, and proxies cap the request line (nginx's
# large_client_header_buffers: 8 KiB by default, others less): a longer request goes as POST.
MAX_GET_URL_CHARS = 4000


class ClientError(RuntimeError):
    """A request refused (`status` set: the HTTP status) or given up on after its retries."""

    def __init__(self, message: str, status: Optional[int] = None):
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class Samples:
    """What /sample or /interpolate answered: the samples and the headers' metadata."""

    samples: np.ndarray  # (k, *sample_shape) float32
    model: str
    version: str
    seed: Optional[int] = None  # /sample by seed (drawn by the server when not given)
    seeds: Optional[tuple[int, int]] = None  # /interpolate between seeds
    labels: Optional[list[str]] = None  # the samples' class labels, when the server sends them (X-Labels)
    drawn: Optional[int] = None  # with a filter: latents drawn, and ...
    accepted: Optional[int] = None  # ... samples kept
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    w: Optional[np.ndarray] = None  # a style-based model's ws (k, num_ws, w_dim), with return_w
    method: str = "POST"  # how it was asked: "GET" (the query, which a cache may answer) or "POST"


@dataclass(frozen=True)
class Scores:
    model: str
    version: str
    realness: np.ndarray  # (n,) D(x) = sigmoid(logit)
    logit: np.ndarray  # (n,)


def _error_text(response: httpx.Response) -> str:
    """The service's one-line `error` (errors.py), else the start of the body."""
    try:
        return str(response.json()["error"])
    except Exception:
        return response.text[:200].strip() or response.reason_phrase


def retry_after_s(response: httpx.Response, now: Optional[float] = None) -> Optional[float]:
    """The answer's Retry-After in seconds (a number of seconds or an HTTP date), if any."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None  # unreadable: our own backoff applies
    return max(0.0, when - (time.time() if now is None else now))


def _ints(value: Optional[str]) -> Optional[list[int]]:
    return None if value is None else [int(v) for v in value.split(",") if v.strip()]


class Client:
    """ganserve over HTTP: `url` is one server or a list of replicas. `stop` (optional): set it
    to cut a retry's wait short and give up (the dataset generator's Ctrl-C)."""

    def __init__(
        self,
        url: Union[str, Sequence[str]],
        token: Optional[str] = None,
        timeout_s: float = 120.0,
        retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = MAX_BACKOFF_S,
        connections: int = 8,
        stop: Optional[threading.Event] = None,
        max_overloaded: int = MAX_OVERLOADED,
    ):
        self.urls = [u.rstrip("/") for u in ([url] if isinstance(url, str) else url)]
        if not self.urls:
            raise ValueError("give at least one server URL")
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self.max_overloaded = max_overloaded
        self.stop = stop or threading.Event()
        self.failed_attempts = 0  # requests that failed and were retried or given up on
        self._sample_by_get = True  # False once a server answered GET /sample 405 (older than that door)
        self._next = itertools.count()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            timeout=timeout_s, headers=headers, limits=httpx.Limits(max_connections=connections * len(self.urls))
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # --- the API ---------------------------------------------------------------------------

    def models(self, only: Optional[str] = None) -> dict:
        """GET /models as the server sends it (models with cards and status, default, limits);
        `only`: ask this replica, not the next in turn."""
        return self.request("GET", "/models", only=only).json()

    def sample(
        self,
        n: Optional[int] = None,
        *,
        model: Optional[str] = None,
        seed: Optional[int] = None,
        latents: Optional[Any] = None,
        truncation: Optional[float] = None,
        min_realness: Optional[float] = None,
        drs: bool = False,
        drs_gamma: Optional[float] = None,
        version: Optional[str] = None,
        truncation_psi: Optional[float] = None,
        truncation_cutoff: Optional[int] = None,
        mix: Optional[tuple[int, int]] = None,
        w: Optional[Any] = None,
        return_w: bool = False,
        edit: Optional[Sequence[tuple[str, float]]] = None,
        cacheable: bool = False,
        **fields: Any,
    ) -> Samples:
        """POST /sample as .npy. `version` pins the model's version (409 when it is no longer
        served); `fields`: any further field of the request body, sent as given. A style-based
        model's w space (docs/API.md): `truncation_psi` (and `truncation_cutoff`), `mix` as
        (seed, from_layer), `w` in place of a seed, and `return_w` (then the answer comes as JSON
        and `Samples.w` holds the ws). `edit`: (direction, amount) moves along the model's editing
        directions (GET /models lists them). `cacheable`: GET /sample with the fields as its
        query when the request can be one (see the module's docstring; `Samples.method` says which
        went), the same answer."""
        if latents is not None:
            latents = np.asarray(latents, dtype=np.float64).tolist()
        body = {
            "model": model,
            "n": n,
            "seed": seed,
            "latents": latents,
            "truncation": truncation,
            "min_realness": min_realness,
            "drs": drs or None,
            "drs_gamma": drs_gamma if drs else None,
            "version": version,
            "truncation_psi": truncation_psi,
            "truncation_cutoff": truncation_cutoff,
            "mix": {"seed": mix[0], "from_layer": mix[1]} if mix is not None else None,
            "w": np.asarray(w, dtype=np.float64).tolist() if w is not None else None,
            "edit": [{"direction": d, "amount": float(a)} for d, a in edit] if edit else None,
            **fields,
            "format": "npy",
        }
        if return_w:
            body |= {"format": "json", "return_w": True}
        body = _present(body)
        query = sample_query(body) if cacheable else None
        response = None
        if query is not None and self._sample_by_get and self._url_chars("/sample", query) <= MAX_GET_URL_CHARS:
            try:
                response = self.request("GET", "/sample", params=query)
            except ClientError as e:
                if e.status != 405:
                    raise
                self._sample_by_get = False  # a server older than GET /sample: POST from now on
        if response is None:
            response = self.request("POST", "/sample", json=body)
        return self._json_samples(response) if return_w else self._samples(response)

    def _url_chars(self, path: str, query: dict[str, str]) -> int:
        """The longest URL the request could go to (any replica), its query encoded as sent."""
        return max(map(len, self.urls)) + len(path) + 1 + len(str(httpx.QueryParams(query)))

    def _json_samples(self, response: httpx.Response) -> Samples:
        """A JSON answer (return_w) as Samples, the ws beside the samples."""
        try:
            got = response.json()
            x = np.asarray(got["samples"], np.float32).reshape(got["shape"])
        except (ValueError, KeyError) as e:
            raise ClientError(f"{response.url}: the answer is not a JSON sample answer ({e})") from None
        return Samples(
            samples=x,
            model=got.get("model", ""),
            version=got.get("version", ""),
            seed=got.get("seed"),
            labels=[str(v) for v in got["labels"]] if "labels" in got else None,
            w=np.asarray(got["w"], np.float32) if "w" in got else None,
            headers=dict(response.headers),
            method=response.request.method,
        )

    def interpolate(
        self,
        *,
        seeds: Optional[Sequence[int]] = None,
        latents: Optional[Any] = None,
        steps: int = 8,
        method: Optional[str] = None,
        model: Optional[str] = None,
        truncation: Optional[float] = None,
        version: Optional[str] = None,
        truncation_psi: Optional[float] = None,
        **fields: Any,
    ) -> Samples:
        """POST /interpolate as .npy: `steps` samples between two seeds or two latents. `method`:
        the server's default when None (slerp in z; a style-based model lerps in w, with
        `truncation_psi`)."""
        body = {
            "model": model,
            "seeds": list(seeds) if seeds is not None else None,
            "latents": np.asarray(latents, dtype=np.float64).tolist() if latents is not None else None,
            "steps": steps,
            "method": method,
            "truncation": truncation,
            "truncation_psi": truncation_psi,
            "version": version,
            **fields,
            "format": "npy",
        }
        return self._samples(self.request("POST", "/interpolate", json=_present(body)))

    def invert(
        self,
        samples: np.ndarray,
        model: Optional[str] = None,
        labels: Optional[Any] = None,
        refine: int = 0,
        seed: Optional[int] = None,
        version: Optional[str] = None,
    ) -> dict:
        """POST /invert as JSON: E's latents (z, or w), G's reconstructions and the error of each;
        `refine` candidates per image of the server's search around E's guess (docs/API.md)."""
        body = {
            "model": model,
            "version": version,
            "samples": np.asarray(samples, dtype=np.float64).tolist(),
            "labels": labels,
            "refine": refine or None,
            "seed": seed,
        }
        got = self.request("POST", "/invert", json=_present(body)).json()
        for key in ("latents", "reconstructions", "error"):
            got[key] = np.asarray(got[key], np.float32)
        return got

    def score(
        self,
        samples: np.ndarray,
        model: Optional[str] = None,
        version: Optional[str] = None,
        labels: Optional[str] = None,
    ) -> Scores:
        """POST /score with the samples as .npy bytes: D's realness and logit per sample. `labels`:
        a conditional model's classes, as /score's query takes them (one class, n comma-separated,
        or "balanced"), so D scores each sample under its class."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(samples, dtype=np.float32), allow_pickle=False)
        response = self.request(
            "POST",
            "/score",
            params=_present({"model": model, "version": version, "labels": labels}),
            content=buffer.getvalue(),
            headers={"Content-Type": NPY_MEDIA_TYPE},
        )
        body = response.json()
        return Scores(
            body["model"],
            body["version"],
            np.asarray(body["realness"], np.float32),
            np.asarray(body["logit"], np.float32),
        )

    # --- transport ------------------------------------------------------------------------

    def _samples(self, response: httpx.Response) -> Samples:
        try:
            x = np.load(io.BytesIO(response.content), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ClientError(f"{response.url}: the answer is not an .npy array ({e})") from None
        h = response.headers
        seeds = _ints(h.get("x-seeds"))
        labels = h.get("x-labels")
        return Samples(
            samples=x,
            model=h.get("x-model", ""),
            version=h.get("x-model-version", ""),
            seed=int(h["x-seed"]) if "x-seed" in h else None,
            seeds=tuple(seeds) if seeds else None,
            labels=labels.split(",") if labels is not None else None,
            drawn=int(h["x-drawn"]) if "x-drawn" in h else None,
            accepted=int(h["x-accepted"]) if "x-accepted" in h else None,
            headers=dict(h),
            method=response.request.method,
        )

    def request(self, method: str, path: str, only: Optional[str] = None, **kwargs: Any) -> httpx.Response:
        """One request with retries (see the module's docstring); `kwargs` go to httpx."""
        first, failures, attempt, overloaded = next(self._next), [], 0, 0
        while True:
            url = only or self.urls[(first + attempt + overloaded) % len(self.urls)]
            wait = None
            try:
                response = self.http.request(method, url + path, **kwargs)
            except httpx.TransportError as e:
                failures.append(f"{url}: {type(e).__name__} {e}".rstrip())
            else:
                if response.status_code < 400:
                    return response
                if response.status_code < 500 and response.status_code != 429:  # our request is wrong
                    raise ClientError(
                        f"{method} {url}{path} was refused (HTTP {response.status_code}): {_error_text(response)}",
                        response.status_code,
                    )
                failures.append(f"{url}: HTTP {response.status_code} {_error_text(response)}")
                wait = retry_after_s(response)
            if wait is not None and overloaded < self.max_overloaded:
                # A busy server said when to come back: not a failure, so no retry is used up.
                overloaded += 1
                if self.stop.wait(min(wait, self.max_backoff_s) * random.uniform(1.0, 1.25)):
                    break
                continue
            self.failed_attempts += 1
            if attempt >= self.retries:
                break
            # Exponential backoff with jitter, so retrying clients do not return in lockstep.
            delay = self.backoff_s * 2**attempt * random.uniform(1.0, 1.25)
            attempt += 1
            if self.stop.wait(min(delay, self.max_backoff_s)):
                break
        raise ClientError(f"{method} {path} failed {len(failures)} time(s), giving up; last: {failures[-1]}")


def _present(body: dict) -> dict:
    return {k: v for k, v in body.items() if v is not None}


def sample_query(body: dict) -> Optional[dict[str, str]]:
    """A POST /sample body (no None values) as GET /sample's query, which the server parses back
    into the same request (service/http/routes.py `_query_request`: pydantic reads each value from
    its text), or None when a field cannot be said there: an array or object (`latents`, `w`,
    `edit`, `mix`), a number that is not finite, or `labels` that the query would read otherwise
    (a one-class list, which it reads as one class for every sample; a name that is all digits,
    which it reads as an index; a name with a comma or surrounding spaces)."""
    query = {}
    for key, value in body.items():
        if key == "labels" and isinstance(value, (list, tuple)):
            if len(value) < 2 or not all(_label_text(v) for v in value):
                return None
            query[key] = ",".join(_label_text(v) for v in value)
            continue
        text = _label_text(value) if key == "labels" else _scalar_text(value)
        if text is None:
            return None
        query[key] = text
    return query


def _scalar_text(value: Any) -> Optional[str]:
    """A JSON scalar as the query's text that parses back to the same value (floats by repr, which
    round-trips exactly); None for anything else."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        return value
    return None


def _label_text(value: Any) -> Optional[str]:
    """One class as the query's `labels` reads it back: an index as its digits, a name as itself
    when the query would not read it as an index or split it."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, numbers.Integral):
        return str(int(value)) if value >= 0 else None
    if isinstance(value, str) and value and value == value.strip() and "," not in value and not value.isdigit():
        return value
    return None
