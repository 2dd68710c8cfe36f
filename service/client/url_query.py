"""A POST /sample body as GET /sample's query: the door a cache in front may answer
(docs/API.md, "GET /sample and caching"), when every field can be said there."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np

# A GET carries its request in the URL, and proxies cap the request line (nginx's
# large_client_header_buffers: 8 KiB by default, others less): a longer request goes as POST.
MAX_GET_URL_CHARS = 4000


def present(body: dict) -> dict:
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
            if len(value) < 2 or not all(label_text(v) for v in value):
                return None
            query[key] = ",".join(label_text(v) for v in value)
            continue
        text = label_text(value) if key == "labels" else scalar_text(value)
        if text is None:
            return None
        query[key] = text
    return query


def scalar_text(value: Any) -> Optional[str]:
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


def label_text(value: Any) -> Optional[str]:
    """One class as the query's `labels` reads it back: an index as its digits, a name as itself
    when the query would not read it as an index or split it."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, numbers.Integral):
        return str(int(value)) if value >= 0 else None
    if isinstance(value, str) and value and value == value.strip() and "," not in value and not value.isdigit():
        return value
    return None
