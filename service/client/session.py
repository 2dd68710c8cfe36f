"""The client itself: one or several replicas, round-robin, retries with backoff, and one
method per route (service/client/__init__.py says how it behaves)."""

from __future__ import annotations

import io
import itertools
import random
import threading
from collections.abc import Sequence
from typing import Any, Optional, Union

import httpx
import numpy as np

from service.client import url_query
from service.client.answers import ClientError, Samples, Scores, error_text, ints, retry_after_s
from service.client.url_query import present, sample_query

NPY_MEDIA_TYPE = "application/x-npy"
MAX_BACKOFF_S = 30.0
# Busy answers (with Retry-After) waited out per request before giving up: at the server's default
# Retry-After of 2 s, about ten minutes of a server too busy to take the request.
MAX_OVERLOADED = 300


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
        body = present(body)
        query = sample_query(body) if cacheable else None
        response = None
        if (
            query is not None
            and self._sample_by_get
            and self._url_chars("/sample", query) <= url_query.MAX_GET_URL_CHARS
        ):
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
        return self._samples(self.request("POST", "/interpolate", json=present(body)))

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
        got = self.request("POST", "/invert", json=present(body)).json()
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
            params=present({"model": model, "version": version, "labels": labels}),
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
        seeds = ints(h.get("x-seeds"))
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
                        f"{method} {url}{path} was refused (HTTP {response.status_code}): {error_text(response)}",
                        response.status_code,
                    )
                failures.append(f"{url}: HTTP {response.status_code} {error_text(response)}")
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
