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

from service.client.answers import ClientError, Samples, Scores, retry_after_s
from service.client.session import NPY_MEDIA_TYPE, Client
from service.client.url_query import MAX_GET_URL_CHARS, sample_query

__all__ = [
    "MAX_GET_URL_CHARS",
    "NPY_MEDIA_TYPE",
    "Client",
    "ClientError",
    "Samples",
    "Scores",
    "retry_after_s",
    "sample_query",
]
