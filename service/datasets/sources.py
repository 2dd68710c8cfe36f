"""Where a dataset's samples come from: a local model folder, or one or many servers over HTTP.

Both answer `block(seed, n, spec)` with exactly what `/sample` answers for
{n, seed, truncation, filter}: the local source calls the same function the endpoint calls
(sampling.from_seed), the HTTP source asks for that request through service/client/, in
`format=npy` (float32 bytes, no text round trip). So a dataset is the same byte for byte whichever source made it.

The HTTP source pins every request to the model version the replicas agreed on at the start, so a
dataset never mixes versions (a replica updated mid-run answers 409, and the run fails saying so),
and asks by `GET /sample` where the request can be one (no `edit`, a short enough URL): an
answer with a seed and a pinned version is one a cache in front may keep (docs/DATASETS.md,
"Through a cache"), so the same dataset asked again through it comes from the cache.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

import numpy as np
from pydantic import ValidationError

from models.card import CARD_FILE, ModelCard
from service.client import Client, ClientError
from service.core import labels, sampling
from service.datasets.plan import DatasetSpec
from service.runtime.engine import Engine, EngineError
from service.runtime.model import LoadedModel
from service.runtime.providers import DeviceError


class SourceError(RuntimeError):
    """The source cannot deliver: an unknown model, a refused request, or retries run out."""


@dataclass
class Block:
    samples: np.ndarray  # (k, *sample_shape) float32, k <= n (fewer when a filter ran out of draws)
    logits: Optional[np.ndarray]  # (k,) D's logits, when the spec asks for realness
    drawn: int  # latents drawn (== n without a filter)
    labels: Optional[np.ndarray] = None  # (k,) int64 classes of a conditional model's rows


@dataclass(frozen=True)
class ServerLimits:
    """What `GET /models` reports under `limits` (settings.Settings.limits)."""

    max_n: int
    max_draws_factor: int
    max_body_bytes: int


class Source(Protocol):
    card: ModelCard
    description: str
    engine: str  # what runs the graphs (manifest.ShardRecord.engine)
    max_n: Optional[int]  # samples per request the source accepts (None: no limit)
    max_draws_factor: int  # a filtered block stops after n x this many draws
    stop: threading.Event  # set when the job is interrupted: stop waiting, give up quickly

    def block(self, seed: int, n: int, spec: DatasetSpec, classes: Optional[np.ndarray] = None) -> Block: ...

    def close(self) -> None: ...


class LocalSource:
    """A loaded model, called in-process (the CLI's local folder, or the server's own engine).
    On the server, `admission` (admission.Admission) makes each block wait for room in the
    worker's budget like any request, so a dataset job and HTTP traffic share one bound."""

    def __init__(self, model: LoadedModel, max_draws_factor: int, description: str = "", admission=None):
        self.model, self.card, self.max_draws_factor = model, model.card, max_draws_factor
        self.max_n = None  # in process: no request to bound
        self.description = description or f"local model {model.name} ({model.provider})"
        self.engine = engine_name(model.backend, model.provider)
        self.directions = list(model.directions)  # /sample's edit moves along these
        self.stop = threading.Event()
        self.admission = admission

    def block(self, seed: int, n: int, spec: DatasetSpec, classes: Optional[np.ndarray] = None) -> Block:
        if self.admission is None:
            return self._block(seed, n, spec, classes)
        from service.core.requests import charge
        from service.runtime.admission import Overloaded

        # A block is the /sample request it stands for, answered as npy.
        cost = charge(self.card, n, "npy", self.max_draws_factor if spec.filter.active else 1)
        while True:
            try:
                with self.admission.admit_sync(cost):
                    return self._block(seed, n, spec, classes)
            except Overloaded as e:  # the server is busy: wait as a client would, unless stopped
                if self.stop.wait(e.retry_after_s):
                    raise SourceError("stopped while waiting for room on the server") from None

    def _block(self, seed: int, n: int, spec: DatasetSpec, classes: Optional[np.ndarray] = None) -> Block:
        f = spec.filter
        keep = sampling.Filter(f.min_realness, f.drs, f.drs_gamma)
        # The same calls, with the same draw bound, as handlers.sample makes for POST /sample.
        plan = (
            labels.resolve(self.model, None if classes is None else list(map(int, classes)), n, seed)
            if self.model.conditional
            else None
        )
        c = None if plan is None else plan.classes
        if spec.truncation_psi is not None or spec.edit:  # in w (core/style.py), or edited (core/edits.py)
            return self._request_block(seed, n, spec, c)
        got = sampling.from_seed(
            self.model, n, seed, spec.truncation, spec.realness, keep, n * self.max_draws_factor, c
        )
        return Block(got.samples, got.logits if spec.realness else None, got.drawn, got.labels)

    def _request_block(self, seed: int, n: int, spec: DatasetSpec, c: Optional[np.ndarray]) -> Block:
        """The /sample request with truncation_psi or edit, as the endpoint computes it."""
        from service.core import edits, latents, style
        from service.core.schemas import Edit, SampleRequest

        # Built unvalidated: a block may hold more rows than a request's max n; the spec was checked.
        req = SampleRequest.model_construct(
            model=self.card.name,
            n=n,
            seed=seed,
            truncation=spec.truncation,
            truncation_psi=spec.truncation_psi,
            labels=None if c is None else [int(v) for v in c],
            edit=[Edit(direction=d, amount=a) for d, a in spec.edit] if spec.edit else None,
        )
        if self.model.is_style:
            x, _, labels_, _ = style.draw(self.model, req, n, seed, None)
        else:
            z = latents.draw(latents.generator(seed), self.card.latent, n, spec.truncation)
            x, labels_ = self.model.generate(edits.apply_z(self.model, req, z), c), c
        logits = self.model.logits(x, labels_) if spec.realness else None
        return Block(x, logits, n, labels_)

    def close(self) -> None:
        pass  # nothing to release: the sessions go with their engine (the server's task shares its own)


def engine_name(backend: str, provider: str) -> str:
    return f"{backend}/{provider}"


def open_local(
    folder: Path, device: str, threads: int, max_draws_factor: int, backend: str = "onnxruntime"
) -> LocalSource:
    """Load one model folder with the service's engine (verified against its card, warmed up)."""
    folder = Path(folder).resolve()
    if not (folder / CARD_FILE).is_file():
        raise SourceError(f"{folder}: not a model folder (no {CARD_FILE}); pass a folder like models/mnist")
    try:
        engine = Engine.from_folder(folder, device=device, intra_op_threads=threads, backend=backend)
    except (EngineError, DeviceError) as e:
        raise SourceError(str(e)) from None
    return LocalSource(engine.get(folder.name), max_draws_factor, f"local folder {folder}")


def _limits(url: str, listing: dict) -> ServerLimits:
    try:
        return ServerLimits(**{k: int(listing["limits"][k]) for k in ("max_n", "max_draws_factor", "max_body_bytes")})
    except (KeyError, TypeError, ValueError) as e:
        raise SourceError(
            f"{url}: /models reports no usable `limits` ({type(e).__name__}: {e}); "
            "is the server older than this client?"
        ) from None


class HttpSource:
    """One or many replicas of the service, through service.client.Client: requests go
    round-robin; a failed request (connection error, timeout, 5xx, 429) is retried on the next
    replica after an exponential backoff (or the server's Retry-After). Each block pins the
    version agreed on; `cacheable` (default): by GET /sample when the request can be one, else
    POST (`methods` counts the blocks fetched each way)."""

    def __init__(
        self,
        urls: list[str],
        model: Optional[str],
        token: Optional[str] = None,
        timeout_s: float = 120.0,
        retries: int = 5,
        backoff_s: float = 0.5,
        connections: int = 8,
        cacheable: bool = True,
    ):
        self.cacheable = cacheable
        self.methods: Counter[str] = Counter()  # blocks fetched by "GET" and by "POST"
        self._count = threading.Lock()
        # The package's one HTTP client (service/client/): round-robin, retries and backoff.
        self.client = Client(
            urls, token=token, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s, connections=connections
        )
        self.urls, self.stop = self.client.urls, self.client.stop
        self.limits: dict[str, ServerLimits] = {}  # per replica, read with its /models
        self.engines: dict[str, str] = {}  # per replica, as its /models reports the model's backend
        self.directions: list[str] | None = None  # the model's editing directions, as /models lists them
        try:
            self.card = self._agree_on_model(model)
        except BaseException:
            self.client.close()
            raise
        # Requests go round-robin, so any replica may have made any block of a shard.
        self.engine = ", ".join(sorted(set(self.engines.values())))
        where = self.urls[0] if len(self.urls) == 1 else f"{len(self.urls)} replicas"
        self.description = f"{where} (model {self.card.name} {self.card.version})"

    @property
    def failed_attempts(self) -> int:
        """Requests that failed and were retried or given up on."""
        return self.client.failed_attempts

    def _agree_on_model(self, name: Optional[str]) -> ModelCard:
        """Every replica must serve the model, in the same version (else the shards would mix)."""
        cards = {}
        for url in self.urls:
            try:
                listing = self.client.models(only=url)
            except ClientError as e:
                raise SourceError(f"server {url} cannot be reached or refuses: {e}") from None
            wanted = name or listing.get("default_model")
            entry = next((m for m in listing.get("models", []) if m.get("name") == wanted), None)
            if entry is None:
                known = ", ".join(m["name"] for m in listing.get("models", []) if m.get("status") == "ready") or "none"
                raise SourceError(f"{url}: unknown model {wanted!r}; models there: {known}")
            if entry.get("status") != "ready":
                raise SourceError(f"{url}: model {wanted!r} is {entry.get('status')}: {entry.get('reason', '')}")
            try:
                cards[url] = ModelCard.model_validate(entry["card"])
            except (KeyError, ValidationError) as e:
                raise SourceError(f"{url}: /models sent an unreadable card for {wanted!r} ({e})") from None
            self.limits[url] = _limits(url, listing)
            self.engines[url] = engine_name(entry.get("backend", "unknown"), entry.get("provider", "unknown"))
            self.directions = entry.get("directions")  # /sample's edit: what the server lists, if it does
        versions = {url: c.version for url, c in cards.items()}
        if len(set(versions.values())) > 1:
            raise SourceError(f"replicas serve different versions of the model: {versions}")
        return next(iter(cards.values()))

    @property
    def max_n(self) -> int:
        """The smallest max n of the replicas: every block may go to any of them."""
        return min(lim.max_n for lim in self.limits.values())

    @property
    def max_draws_factor(self) -> int:
        """The replicas' common draw bound; replicas that differ would make a filtered block's
        rows depend on which replica drew it, so that is an error."""
        factors = {url: lim.max_draws_factor for url, lim in self.limits.items()}
        if len(set(factors.values())) > 1:
            raise SourceError(f"replicas bound filtered draws differently (GANSERVE_MAX_DRAWS_FACTOR): {factors}")
        return next(iter(factors.values()))

    def block(self, seed: int, n: int, spec: DatasetSpec, classes: Optional[np.ndarray] = None) -> Block:
        f = spec.filter
        extra = {} if classes is None else {"labels": classes.tolist()}
        try:
            got = self.client.sample(
                n,
                model=self.card.name,
                version=self.card.version,
                seed=seed,
                truncation=spec.truncation,
                truncation_psi=spec.truncation_psi,
                edit=spec.edit,
                min_realness=f.min_realness,
                drs=f.drs,
                drs_gamma=f.drs_gamma,
                cacheable=self.cacheable,
                **extra,
            )
        except ClientError as e:
            raise self._refused(e) from None
        with self._count:
            self.methods[got.method] += 1
        if got.version != self.card.version:
            raise SourceError(
                f"a server answered with model version {got.version}, the dataset is "
                f"made with {self.card.version} (a replica was updated mid-run?)"
            )
        x = got.samples  # (k, *sample_shape) float32
        if x.dtype != np.float32 or x.shape[1:] != tuple(self.card.sample.shape) or len(x) > n:
            raise SourceError(
                f"a server sent samples of {x.dtype} {x.shape}, expected at most {n} "
                f"rows of float32 {tuple(self.card.sample.shape)}"
            )
        c = self._classes(got.labels, len(x)) if self.card.condition else None
        logits = self._logits(x, c) if spec.realness else None
        return Block(x, logits, got.drawn if got.drawn is not None else n, c)

    def _refused(self, e: ClientError) -> SourceError:
        """The client's error as the source's; a pinned version refused (409: no longer served
        there, 404: never served there) says that the model changed under the run."""
        if e.status in (404, 409):
            return SourceError(
                f"a server refused version {self.card.version} of model {self.card.name!r}, the version "
                f"this dataset is made with (was the model updated mid-run?): {e}"
            )
        return SourceError(str(e))

    def _classes(self, sent: Optional[list[str]], k: int) -> np.ndarray:
        """A conditional model's classes of the rows, as the X-Labels header sent them."""
        try:
            c = np.array([int(v) for v in sent] if sent else [], np.int64)
        except ValueError:
            c = None
        if c is None or len(c) != k:
            raise SourceError(f"a server answered a conditional model without one class per row in {labels.HEADER}")
        return c

    def _logits(self, x: np.ndarray, c: Optional[np.ndarray] = None) -> np.ndarray:
        """D's logits for x (under classes c), from POST /score with the .npy bytes (same rows, same graph)."""
        if len(x) == 0:
            return np.zeros(0, np.float32)
        try:
            return self.client.score(
                x, self.card.name, version=self.card.version, labels=None if c is None else labels.header_value(c)
            ).logit  # (k,)
        except ClientError as e:
            raise self._refused(e) from None

    def close(self) -> None:
        self.client.close()
