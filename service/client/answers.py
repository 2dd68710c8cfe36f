"""What the client hands back and raises: the answers' types, the server's error line, Retry-After."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from typing import Optional

import httpx
import numpy as np


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


def error_text(response: httpx.Response) -> str:
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


def ints(value: Optional[str]) -> Optional[list[int]]:
    return None if value is None else [int(v) for v in value.split(",") if v.strip()]
