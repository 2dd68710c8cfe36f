"""The artifact contract: the schema of `models/<name>/model.json` and its checks.

This file, with the card's parts in card_parts.py (re-exported here), is the only code shared by
`training/` (which writes cards) and `service/` (which reads them). It imports pydantic and the standard library only, so neither side drags the other's
dependencies in. Checks that need a graph reader (onnx, onnxruntime) take the graph's observed
signature as plain data from the caller: see `check_signature`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, ValidationError, model_validator

from .card_parts import (  # noqa: F401  (re-exported: callers import the card's parts from here)
    Calibration,
    Condition,
    Dim,
    FileEntry,
    GraphSignature,
    Latent,
    Metric,
    OnnxInfo,
    Realness,
    RealnessSummary,
    ReliabilityBin,
    Sample,
    Source,
    SourceFile,
    Style,
    TensorSpec,
    TrainingInfo,
    _Strict,
)

CARD_FILE = "model.json"
# Version 2 (conditional models, optional discriminator and training record, packed models);
# cards of version 1 are still read unchanged, with version 1's stricter rules.
SCHEMA_VERSION = 2
# Version 3: a style-based model (mapping.onnx and synthesis.onnx in place of generator.onnx, and
# the `style` section). Only style-based cards are version 3; a single-graph card stays version 2.
STYLE_SCHEMA_VERSION = 3
# Roles of the graphs in a model folder, and the file each must be stored in.
# `ratio` (optional, beside a calibrated discriminator): the D trained with G, kept as it was
# exported, whose logit DRS rejects by (Realness.drs_ratio "training"); realness stays the
# calibrated D's. A file of its own, not a second output of discriminator.onnx: onnxruntime runs
# every node of a graph whatever outputs a run asks for, so a two-output D made every realness
# request pay for both D's (docs/PERFORMANCE.md#finding-ratio-onnx).
GRAPH_FILES = {
    "generator": "generator.onnx",
    "mapping": "mapping.onnx",
    "synthesis": "synthesis.onnx",
    "discriminator": "discriminator.onnx",
    "ratio": "ratio.onnx",
    # Optional, any model: E, trained after G with G frozen to map a sample back to its latent
    # (the paper's section 7, "learned approximate inference"): x [, c] -> z, or w for a
    # style-based model. python -m training encoder adds it; POST /invert runs it.
    "encoder": "encoder.onnx",
}
DIRECTIONS_FILE = "directions.json"
# What draws samples: one generator graph, or a style-based model's mapping then synthesis.
SINGLE_GRAPH_ROLES = ("generator",)
STYLE_ROLES = ("mapping", "synthesis")
# The dtypes a graph input or output may have: float32 tensors, and int64 class indices.
DTYPES = ("float32", "int64")
# A model's name is its folder's name and appears in URLs: lowercase, digits, '-' and '_'.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class CardError(ValueError):
    """A model folder that does not satisfy its card. `path` names the offending file."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ModelCard(_Strict):
    schema_version: Literal[1, 2, 3] = SCHEMA_VERSION
    name: str = Field(pattern=NAME_PATTERN)
    description: str
    dataset: str
    latent: Latent
    sample: Sample
    files: dict[Literal["generator", "mapping", "synthesis", "discriminator", "ratio", "encoder"], FileEntry]
    onnx: OnnxInfo
    realness: Optional[Realness] = None  # present exactly when there is a discriminator
    training: Optional[TrainingInfo] = None  # a trained model's record ...
    source: Optional[Source] = None  # ... or a packed model's origin (version 2)
    condition: Optional[Condition] = None  # a conditional model's classes (version 2)
    style: Optional[Style] = None  # a style-based model's w space (version 3)
    # Editing directions in the latent space (python -m training directions): directions.json beside
    # the graphs, checksummed like them (DIRECTIONS_FILE; the service reads it, /sample's `edit`).
    directions: Optional[FileEntry] = None
    metrics: dict[str, Metric] = Field(default_factory=dict)
    created_at: datetime

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        self._check_generator_roles()
        for role, entry in self.files.items():
            if entry.name != GRAPH_FILES[role]:
                raise ValueError(f"files.{role}: must be named {GRAPH_FILES[role]}")
        has_d = "discriminator" in self.files
        for role in GRAPH_FILES:
            if (role in self.files) != (getattr(self.onnx, role) is not None):
                raise ValueError(f"onnx.{role}: must be given exactly when files has a {role}")
        if has_d != (self.realness is not None):
            raise ValueError("realness: must be given exactly when there is a discriminator")
        if self.schema_version == 1:
            # Version 1 cards were all written by our exporter: both graphs and a training record.
            missing = [
                k for k in ("discriminator", "training") if not (has_d if k == "discriminator" else self.training)
            ]
            if missing:
                raise ValueError(f"schema_version 1 needs {' and '.join(missing)} (optional from version 2)")
            if self.source is not None or self.condition is not None or self.latent.shape is not None:
                raise ValueError("source, condition and latent.shape need schema_version 2")
            if self.realness.model_dump(exclude_defaults=True).keys() - {"max_logit", "measured_on"}:
                raise ValueError("realness: a calibrated discriminator's record needs schema_version 2")
        elif self.training is None and self.source is None:
            raise ValueError("training or source: a card says how its model was made")
        self._check_condition_inputs()
        if self.directions is not None and self.directions.name != DIRECTIONS_FILE:
            raise ValueError(f"directions: must be named {DIRECTIONS_FILE}")
        has_ratio = "ratio" in self.files
        if has_ratio != (has_d and self.realness.drs_ratio == "training"):
            raise ValueError(
                f"files.ratio: {GRAPH_FILES['ratio']} (the D trained with G) exactly when there is a "
                "discriminator and realness.drs_ratio is 'training'"
            )
        if has_ratio and [(t.name, t.dtype) for t in self.onnx.ratio.inputs] != [
            (t.name, t.dtype) for t in self.onnx.discriminator.inputs
        ]:
            raise ValueError("onnx.ratio: must take the discriminator's inputs (names and dtypes)")
        return self

    def _check_generator_roles(self) -> None:
        """A single-graph model has generator.onnx; a style-based one (version 3, `style`) has
        mapping.onnx and synthesis.onnx instead, whose shapes the style section states."""
        if (self.schema_version == STYLE_SCHEMA_VERSION) != (self.style is not None):
            raise ValueError(f"style: given exactly when schema_version is {STYLE_SCHEMA_VERSION}")
        want, other = (STYLE_ROLES, SINGLE_GRAPH_ROLES) if self.style is not None else (SINGLE_GRAPH_ROLES, STYLE_ROLES)
        for role in want:
            if role not in self.files:
                raise ValueError(f"files: missing the {role} entry")
        for role in other:
            if role in self.files:
                kind = "a style-based" if self.style is not None else "a single-graph"
                raise ValueError(f"files.{role}: {kind} model has no {GRAPH_FILES[role]}")
        if self.style is None:
            return
        w = self.onnx.mapping.outputs[0].shape if self.onnx.mapping else []
        if len(w) != 2 or w[1] != self.style.w_dim:
            raise ValueError(f"onnx.mapping: its output must be [batch, {self.style.w_dim}] (style.w_dim), got {w}")
        synthesis = self.onnx.synthesis
        ws = synthesis.inputs[0].shape if synthesis else []
        if len(synthesis.inputs) != 1 or len(ws) != 3 or list(ws[1:]) != [self.style.num_ws, self.style.w_dim]:
            raise ValueError(
                f"onnx.synthesis: takes one input ws [batch, {self.style.num_ws}, {self.style.w_dim}] "
                f"(style.num_ws, style.w_dim), got {[t.shape for t in synthesis.inputs]}"
            )

    def _check_condition_inputs(self) -> None:
        """Each graph's inputs are what the card's latent / sample and condition imply."""
        for role in GRAPH_FILES:
            sig = getattr(self.onnx, role)
            if sig is None:
                continue
            if sig.inputs[0].dtype != "float32" or any(o.dtype != "float32" for o in sig.outputs):
                raise ValueError(f"onnx.{role}: its first input and its outputs must be float32")
            extra = sig.inputs[1:]
            if role == "synthesis":  # draws from ws alone: the class, if any, is in w already
                continue
            if role == "encoder":
                self._check_encoder(sig)
            if self.condition is None:
                if extra:
                    raise ValueError(f"onnx.{role}: inputs beyond the first need a condition section")
            elif [(t.name, t.dtype, len(t.shape)) for t in extra] != [(self.condition.input, "int64", 1)]:
                raise ValueError(
                    f"onnx.{role}: a conditional graph takes {self.condition.input!r} int64 [batch] as its second input"
                )

    def _check_encoder(self, sig: GraphSignature) -> None:
        """E's output is the latent the model samples from: z [batch, dim], or w [batch, w_dim]."""
        want = self.style.w_dim if self.style is not None else self.latent.dim
        out = sig.outputs[0].shape
        if len(out) != 2 or out[1] != want:
            space = "w_dim" if self.style is not None else "latent.dim"
            raise ValueError(f"onnx.encoder: its output must be [batch, {want}] ({space}), got {out}")

    @property
    def has_encoder(self) -> bool:
        return "encoder" in self.files

    @property
    def generator_sha256(self) -> str:
        """What fixes the samples: the generator's sha256; for a style-based model, the sha256 of
        its mapping's, synthesis's and w_avg's digests together."""
        if self.style is None:
            return self.files["generator"].sha256
        parts = (self.files["mapping"].sha256, self.files["synthesis"].sha256, self.style.w_avg.sha256)
        return hashlib.sha256(":".join(parts).encode("ascii")).hexdigest()

    @property
    def version(self) -> str:
        """A short content version: the first 12 hex digits of generator_sha256."""
        return self.generator_sha256[:12]

    @property
    def is_style(self) -> bool:
        return self.style is not None

    @property
    def sampling_roles(self) -> tuple[str, ...]:
        """The graphs that draw a sample from z, in order."""
        return STYLE_ROLES if self.style is not None else SINGLE_GRAPH_ROLES

    @property
    def drs_role(self) -> Optional[str]:
        """The graph whose logit DRS rejects by: `ratio`, the D trained with G, where the card keeps
        it beside a calibrated D (Realness.drs_ratio); else the served discriminator."""
        if not self.has_discriminator:
            return None
        return "ratio" if "ratio" in self.files else "discriminator"

    @property
    def has_discriminator(self) -> bool:
        return "discriminator" in self.files

    @property
    def roles(self) -> list[str]:
        """The graphs this model has, the sampling graphs (generator, or mapping and synthesis) first."""
        return [r for r in GRAPH_FILES if r in self.files]

    def expected_signature(self, role: str) -> GraphSignature:
        sig = getattr(self.onnx, role)
        if sig is None:
            raise LookupError(f"model {self.name!r} has no {role}")
        return sig


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path) -> FileEntry:
    return FileEntry(name=path.name, sha256=sha256_of(path), bytes=path.stat().st_size)


def read_card(folder: Path | str) -> ModelCard:
    """Parse and validate `folder/model.json`; every failure is a CardError naming the file."""
    path = Path(folder) / CARD_FILE
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CardError(path, "missing") from None
    except OSError as e:
        raise CardError(path, f"unreadable ({e.strerror})") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CardError(path, f"not valid JSON (line {e.lineno}: {e.msg})") from None
    try:
        return ModelCard.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise CardError(path, f"{where}: {first['msg']} ({e.error_count()} problem(s))") from None


def _unset_optional_parts(card: ModelCard) -> dict:
    """The card's optional parts that are not set, to leave out of the file: so a version 1 card
    written back is still one that older readers (which forbid unknown keys such as `condition`)
    accept. Only these: a null inside the training config is data and stays."""
    exclude: dict = {
        k: True
        for k in ("realness", "training", "source", "condition", "style", "directions")
        if getattr(card, k) is None
    }
    unset_graphs = {role for role in GRAPH_FILES if getattr(card.onnx, role) is None}
    if unset_graphs:
        exclude["onnx"] = unset_graphs
    if card.latent.shape is None:
        exclude["latent"] = {"shape"}
    if card.realness is not None:  # calibration's record, absent from cards written before it
        unset = {k for k, v in card.realness.model_dump().items() if v is None}
        exclude["realness"] = (
            unset
            | ({"discriminator"} if card.schema_version == 1 else set())
            | ({"drs_ratio"} if card.realness.drs_ratio == "served" else set())
        )  # cards stay as they were
    return exclude


def write_card(folder: Path | str, card: ModelCard) -> Path:
    """Write the card atomically: a reader sees the old card or the new one, never half of one."""
    path = Path(folder) / CARD_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(card.model_dump_json(indent=2, exclude=_unset_optional_parts(card)) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def verify_files(folder: Path | str, card: ModelCard) -> dict[str, Path]:
    """Check each graph file's size and sha256 against the card (and a style-based model's
    w_avg.npy); return graph role -> path."""
    folder = Path(folder)
    paths = {role: _verified(folder, entry) for role, entry in card.files.items()}
    if card.style is not None:
        _verified(folder, card.style.w_avg)
    if card.directions is not None:
        _verified(folder, card.directions)
    return paths


def _verified(folder: Path, entry: FileEntry) -> Path:
    path = folder / entry.name
    if not path.is_file():
        raise CardError(path, "missing")
    size = path.stat().st_size
    if size != entry.bytes:
        raise CardError(path, f"is {size} bytes, the card says {entry.bytes}")
    if sha256_of(path) != entry.sha256:
        raise CardError(path, "sha256 does not match the card (modified or corrupted)")
    return path


def check_signature(path: Path | str, expected: GraphSignature, observed: GraphSignature) -> None:
    """Compare a graph's observed inputs/outputs (names, dtypes, shapes) with the card's.

    Dynamic dimensions compare by position only: onnx and onnxruntime name them differently.
    """

    def norm(specs: list[TensorSpec]) -> list[tuple]:
        return [(s.name, s.dtype, [d if isinstance(d, int) else "?" for d in s.shape]) for s in specs]

    for what in ("inputs", "outputs"):
        want, got = norm(getattr(expected, what)), norm(getattr(observed, what))
        if want != got:
            raise CardError(path, f"graph {what} {got} do not match the card's {want}")


def load_model_folder(folder: Path | str) -> tuple[ModelCard, dict[str, Path]]:
    """Read the card and verify the files it lists: the first step of every consumer."""
    card = read_card(folder)
    if card.name != Path(folder).name:
        raise CardError(Path(folder) / CARD_FILE, f"name {card.name!r} differs from its folder's")
    return card, verify_files(folder, card)
