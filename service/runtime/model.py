"""A verified, loaded model: its graphs' sessions, the micro-batchers in front of them, and the
three ways to run each graph (from threads, awaited on the event loop, or inline), which give the
same answers. The engine (engine.py) finds, verifies and loads the folders; this is what it hands
out, and what a request holds from lookup to answer.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.card import CardError, GraphSignature, ModelCard, TensorSpec
from service.runtime import backends
from service.runtime.batching import AsyncMicroBatcher, MicroBatcher

log = logging.getLogger("ganserve.engine")  # the engine's log: a model is its part

# The longest two-sample run of a model's graphs that may run on the event loop (LoadedModel.inline_ok):
# ten times the slowest shipped model's, which leaves room for a busy machine
# (docs/PERFORMANCE.md#finding-sole-client).
INLINE_MAX_RUN_S = 0.003
# onnxruntime's names for the dtypes a card allows (models/card.py DTYPES).
ORT_DTYPES = {"tensor(float)": "float32", "tensor(int64)": "int64"}
# The folder's optional third graph, ratio.onnx: the D trained with G, whose logit DRS rejects by
# where the card keeps it beside a calibrated D (Realness.drs_ratio "training").
RATIO = "ratio"


class NoEncoder(LookupError):
    """The model has no encoder.onnx: POST /invert is not available for it."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"model {name!r} has no encoder: /invert needs one (python -m training encoder models/{name})")


class InferenceError(RuntimeError):
    """onnxruntime failed while running a graph (a fault of the model or the runtime, not the caller)."""


class NoDiscriminator(LookupError):
    """The model was packed without a discriminator: realness is not available for it."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(
            f"model {name!r} has no discriminator: realness (scores, min_realness, drs, /score) is not available for it"
        )


def observed_signature(session: ort.InferenceSession, path: Path) -> GraphSignature:
    """The graph's inputs/outputs as onnxruntime reports them, in the card's terms."""

    def specs(args) -> list[TensorSpec]:
        out = []
        for arg in args:
            if arg.type not in ORT_DTYPES:
                raise CardError(path, f"tensor {arg.name!r} is {arg.type}, the card allows float32 and int64 only")
            out.append(
                TensorSpec(
                    name=arg.name,
                    dtype=ORT_DTYPES[arg.type],
                    shape=[d if isinstance(d, int) else str(d) for d in arg.shape],
                )
            )
        return out

    return GraphSignature(inputs=specs(session.get_inputs()), outputs=specs(session.get_outputs()))


def _graph_input(a: np.ndarray) -> np.ndarray:
    """What every graph takes: C-contiguous float32 (a copy only when `a` is not already)."""
    return np.ascontiguousarray(a, dtype=np.float32)


def _with_classes(a: np.ndarray, c: np.ndarray | None) -> np.ndarray:
    """A conditional graph's rows for the micro-batchers, which batch one array: each row
    flattened with its class index as one more float32 column (exact: indices are far below
    2**24). `_split_classes` undoes it at the graph. Unconditional rows pass unchanged."""
    if c is None:
        return _graph_input(a)
    rows = np.empty((len(a), math.prod(a.shape[1:]) + 1), dtype=np.float32)
    rows[:, :-1] = a.reshape(len(a), -1)
    rows[:, -1] = c
    return rows


@dataclass(eq=False)
class LoadedModel:
    """A verified, warmed-up model: its generator and discriminator, each runnable three ways
    (below: from threads, awaited on the event loop, or inline), all giving the same answers."""

    card: ModelCard
    folder: Path
    provider: str
    sessions: dict[str, ort.InferenceSession]
    executor: Executor
    micro_batching: bool = True
    gather_s: float = 0.0  # the event loop's batchers gather for this long under load (batching.py)
    backend: str = backends.DEFAULT  # the engine running the graphs (backends.py), and why
    backend_reason: str = ""
    # A style-based model's w_avg (w_dim,) float32, checked against the card (engine.py); else None.
    w_avg: np.ndarray | None = None
    # Editing directions by name, unit vectors in z (or w), from directions.json (engine.py); {} without.
    directions: dict = field(default_factory=dict)
    # Whether a lone client's small request may run this model's graphs on the event loop
    # (handlers.sample_async): only a model whose one-sample runs took at most INLINE_MAX_RUN_S
    # at warm-up. A slow graph on the loop would stall every other request and the request
    # timeout with it (a 504 cannot fire while the loop is blocked).
    inline_ok: bool = field(default=True, init=False)
    generator: MicroBatcher = field(init=False)
    discriminator: MicroBatcher = field(init=False)
    generator_async: AsyncMicroBatcher = field(init=False)
    discriminator_async: AsyncMicroBatcher = field(init=False)

    def __post_init__(self) -> None:
        run_g, run_d = (lambda z: self._run("generator", z)), (lambda x: self._run("discriminator", x))
        self.generator = MicroBatcher(run_g, enabled=self.micro_batching)
        self.discriminator = MicroBatcher(run_d, enabled=self.micro_batching)
        self.generator_async = AsyncMicroBatcher(
            run_g, self.executor, enabled=self.micro_batching, gather_s=self.gather_s
        )
        self.discriminator_async = AsyncMicroBatcher(
            run_d, self.executor, enabled=self.micro_batching, gather_s=self.gather_s
        )

    @property
    def name(self) -> str:
        return self.card.name

    @functools.cached_property
    def card_digest(self) -> str:
        """sha256 of the card (every file's sha256 among it): what http/caching.py's ETags name the
        model's files by. Once per loaded model, on the model itself, so it goes when the model
        does: a reload is a new LoadedModel, and nothing global keeps the old card."""
        return hashlib.sha256(self.card.model_dump_json().encode()).hexdigest()

    @property
    def has_discriminator(self) -> bool:
        return "discriminator" in self.sessions

    @property
    def has_ratio(self) -> bool:
        """DRS's ratio is kept apart from realness, as ratio.onnx (Realness.drs_ratio)."""
        return RATIO in self.sessions

    @property
    def conditional(self) -> bool:
        return self.card.condition is not None

    @property
    def is_style(self) -> bool:
        return self.card.style is not None

    @property
    def has_encoder(self) -> bool:
        return "encoder" in self.sessions

    def _per_sample(self, role: str) -> list[int]:
        if role == "encoder":
            return self.card.sample.shape
        if role in ("generator", "mapping"):
            return self.card.latent.graph_shape
        if role == "synthesis":
            return [self.card.style.num_ws, self.card.style.w_dim]
        return self.card.sample.shape

    def _feeds(self, role: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's inputs for a batch of rows: z reshaped to the card's latent shape (DCGAN's
        [dim, 1, 1]), ws to [num_ws, w_dim]; for a conditional model's graphs that take the class
        (all but synthesis), the class column split off as int64."""
        sig = self.card.expected_signature(role)
        feeds = {}
        if self.card.condition is not None and role != "synthesis":
            feeds[self.card.condition.input] = batch[:, -1].astype(np.int64)
            batch = batch[:, :-1]
        feeds[sig.inputs[0].name] = np.ascontiguousarray(batch.reshape(len(batch), *self._per_sample(role)))
        return feeds

    def _run(self, role: str, batch: np.ndarray) -> np.ndarray:
        """The first output of the role's graph for `batch`. "generator" of a style-based model is
        its mapping, w broadcast to every layer, then its synthesis: one run, one batcher."""
        if role == "generator" and self.is_style:
            w = self._run("mapping", batch)  # (n, w_dim)
            return self._run("synthesis", self.broadcast(w).reshape(len(w), -1))
        session = self.sessions.get(role)
        if session is None:
            raise NoDiscriminator(self.name)
        try:
            return session.run([self.card.expected_signature(role).outputs[0].name], self._feeds(role, batch))[0]
        except Exception as e:  # onnxruntime's own exception types are not importable API
            raise InferenceError(f"onnxruntime failed running {self.name}'s {role}: {e}") from None

    def _classes(self, n: int, c: np.ndarray | None) -> np.ndarray | None:
        """Checks that a conditional model gets n class indices in range, and others none."""
        if self.card.condition is None:
            if c is not None:
                raise ValueError(f"model {self.name!r} is not conditional: it takes no classes")
            return None
        if c is None or c.shape != (n,):
            raise ValueError(f"model {self.name!r} is conditional: it needs {n} class indices, one per sample")
        c = np.asarray(c)
        if (
            not np.issubdtype(c.dtype, np.integer)
            or c.min(initial=0) < 0
            or c.max(initial=0) >= self.card.condition.classes
        ):
            raise ValueError(f"class indices must be integers in [0, {self.card.condition.classes})")
        return c

    # Three ways to run each graph, same answers: `generate`/`logits` from threads (micro-batched),
    # `*_async` awaited on the event loop (micro-batched, runs in `executor`), `*_inline` on the
    # caller's thread as a run of its own (a lone client's small request, core/requests.py INLINE_MAX_N).

    # Each takes `c`, the (n,) class indices, for a conditional model (and refuses it otherwise).

    def generate(self, z: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        """(n, z_dim) float32 [, (n,) int classes] -> (n, *sample_shape) float32."""
        out = self.generator(_with_classes(z, self._classes(len(z), c)))
        return out.reshape(len(z), *self.card.sample.shape)

    def logits(self, x: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        """(n, *sample_shape) float32 [, (n,) classes] -> (n,) realness logits; realness = sigmoid(logit)."""
        self._need_discriminator()
        return self.discriminator(_with_classes(x, self._classes(len(x), c))).reshape(len(x))

    def ratio_logits(self, x: np.ndarray, c: np.ndarray | None = None) -> np.ndarray | None:
        """(n,) logits DRS rejects by, where the card keeps the training D's ratio apart from
        realness (Realness.drs_ratio, ratio.onnx); else None, and DRS rejects by the realness
        logits."""
        self._need_discriminator()
        if not self.has_ratio:
            return None
        return self._run(RATIO, _with_classes(x, self._classes(len(x), c))).reshape(len(x))

    def generate_inline(self, z: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        out = self._run("generator", _with_classes(z, self._classes(len(z), c)))
        return out.reshape(len(z), *self.card.sample.shape)

    def logits_inline(self, x: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        self._need_discriminator()
        return self._run("discriminator", _with_classes(x, self._classes(len(x), c))).reshape(len(x))

    async def generate_async(self, z: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        out = await self.generator_async(_with_classes(z, self._classes(len(z), c)))
        return out.reshape(len(z), *self.card.sample.shape)

    async def logits_async(self, x: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        self._need_discriminator()
        return (await self.discriminator_async(_with_classes(x, self._classes(len(x), c)))).reshape(len(x))

    # ---- w space (style-based models): run in the caller's thread, outside the batchers ----

    def broadcast(self, w: np.ndarray) -> np.ndarray:
        """(n, w_dim) -> (n, num_ws, w_dim): the same w for every layer."""
        return np.broadcast_to(w[:, None], (len(w), self.card.style.num_ws, w.shape[1]))

    def map_w(self, z: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        """(n, z_dim) [, (n,) classes] -> w (n, w_dim) through mapping.onnx."""
        return self._run("mapping", _with_classes(z, self._classes(len(z), c)))

    def synthesize(self, ws: np.ndarray) -> np.ndarray:
        """ws (n, num_ws, w_dim) -> (n, *sample_shape) through synthesis.onnx."""
        out = self._run("synthesis", _graph_input(ws).reshape(len(ws), -1))
        return out.reshape(len(ws), *self.card.sample.shape)

    def encode(self, x: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        """(n, *sample_shape) [, (n,) classes] -> E's latent (n, z_dim), or w (n, w_dim) for a
        style-based model, through encoder.onnx (learned inference)."""
        if not self.has_encoder:
            raise NoEncoder(self.name)
        return self._run("encoder", _with_classes(x, self._classes(len(x), c)))

    def draw_latent(self, latent: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        """G's samples of latents in E's space: z through the generator, w through synthesis."""
        if self.is_style:
            return self.synthesize(self.broadcast(latent))
        return self.generate(latent, c)

    def _need_discriminator(self) -> None:
        if not self.has_discriminator:
            raise NoDiscriminator(self.name)

    def warm_up(self) -> None:
        """One real run of each graph; their output shapes must be what the card promises."""
        z = probe_latents(np.random.default_rng(0), self.card.latent, 2)  # (2, z_dim)
        c = np.arange(2) % self.card.condition.classes if self.card.condition else None
        began = time.perf_counter()
        x = self._run("generator", _with_classes(z, c))
        want = (2, *self.card.sample.shape)
        if x.shape != want:
            raise CardError(
                self.folder / self.card.files[self.card.sampling_roles[-1]].name,
                f"returns shape {list(x.shape)} for 2 latents, the card implies {list(want)}",
            )
        if self.has_encoder:
            latent = self._run("encoder", _with_classes(x, c))
            want_dim = self.card.style.w_dim if self.is_style else self.card.latent.dim
            if latent.shape != (2, want_dim):
                raise CardError(
                    self.folder / "encoder.onnx",
                    f"returns shape {list(latent.shape)} for 2 samples, expected [2, {want_dim}]",
                )
        for role in [r for r in self.card.roles if r in ("discriminator", RATIO)]:  # D and its ratio, where given
            logit = self._run(role, _with_classes(x, c))
            if logit.shape not in ((2, 1), (2,)):  # [batch] too: packed graphs made elsewhere often squeeze it
                raise CardError(
                    self.folder / self.card.files[role].name,
                    f"output {self.card.expected_signature(role).outputs[0].name!r} has shape "
                    f"{list(logit.shape)} for 2 samples, expected [2, 1] or [2]",
                )
        if time.perf_counter() - began > INLINE_MAX_RUN_S:  # slow even counting planning: time it again
            began = time.perf_counter()  # (the first run of a shape pays for planning)
            x = self._run("generator", _with_classes(z, c))
            if self.has_discriminator:
                self._run("discriminator", _with_classes(x, c))
            self.inline_ok = time.perf_counter() - began <= INLINE_MAX_RUN_S


def probe_latents(rng: np.random.Generator, latent, n: int) -> np.ndarray:
    """n latents (n, dim) float32 from the card's distribution, for the engine's own runs (warm-up,
    the backend probe), whose answers no caller sees. A request's latents come from its seed
    (core/latents.py), the contract that makes a seed portable; these need only the right shape
    and range."""
    if latent.distribution == "normal":
        return rng.standard_normal((n, latent.dim), dtype=np.float32)
    return (latent.low + (latent.high - latent.low) * rng.random((n, latent.dim))).astype(np.float32)
