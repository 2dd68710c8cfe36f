"""The artifact contract: the schema of `models/<name>/model.json` and its checks.

This file is the only code shared by `training/` (which writes cards) and `service/` (which reads
them). It imports pydantic and the standard library only, so neither side drags the other's
dependencies in. Checks that need a graph reader (onnx, onnxruntime) take the graph's observed
signature as plain data from the caller: see `check_signature`.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CARD_FILE = "model.json"
# Version 2 (conditional models, optional discriminator and training record, packed models);
# cards of version 1 are still read unchanged, with version 1's stricter rules.
SCHEMA_VERSION = 2
# Roles of the graphs in a model folder, and the file each must be stored in.
GRAPH_FILES = {"generator": "generator.onnx", "discriminator": "discriminator.onnx"}
# The dtypes a graph input or output may have: float32 tensors, and int64 class indices.
DTYPES = ("float32", "int64")
# A model's name is its folder's name and appears in URLs: lowercase, digits, '-' and '_'.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

# A dimension is a fixed size, or a name for a dynamic one (the batch axis is always "batch").
Dim = Union[int, str]


class CardError(ValueError):
    """A model folder that does not satisfy its card. `path` names the offending file."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class _Strict(BaseModel):
    # Unknown keys are typos or a newer schema: refuse both rather than silently ignore them.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Latent(_Strict):
    """How z is drawn. `uniform` draws each coordinate from U(low, high) (the paper's MNIST G:
    U(-sqrt 3, sqrt 3), unit variance); `normal` draws N(0, 1)."""

    dim: int = Field(ge=1, le=65536)
    distribution: Literal["normal", "uniform"]
    low: Optional[float] = None
    high: Optional[float] = None
    # The generator's z input per sample when it is not a flat [dim] (DCGAN takes [dim, 1, 1]):
    # declared, never guessed. Latents are still drawn as (n, dim) and reshaped at the graph.
    shape: Optional[list[int]] = Field(default=None, min_length=1, max_length=3)

    @model_validator(mode="after")
    def _bounds(self) -> "Latent":
        if self.distribution == "uniform":
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError("a uniform latent needs finite bounds low < high")
        elif self.low is not None or self.high is not None:
            raise ValueError("a normal latent takes no bounds")
        if self.shape is not None and math.prod(self.shape) != self.dim:
            raise ValueError(f"shape {self.shape} does not hold dim {self.dim} values")
        return self

    @property
    def graph_shape(self) -> list[int]:
        """z's shape per sample as the generator takes it."""
        return list(self.shape) if self.shape is not None else [self.dim]


class Sample(_Strict):
    """What G produces: one sample is an array of `shape` (images are [channels, height, width])
    with values in `value_range`."""

    shape: list[int] = Field(min_length=1, max_length=3)
    kind: Literal["image", "vector"]
    value_range: tuple[float, float]

    @field_validator("shape")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(d < 1 for d in v):
            raise ValueError("every dimension must be >= 1")
        return v

    @model_validator(mode="after")
    def _image_shape(self) -> "Sample":
        if self.kind == "image" and (len(self.shape) != 3 or self.shape[0] not in (1, 3)):
            raise ValueError("an image sample has shape [channels (1 or 3), height, width]")
        lo, hi = self.value_range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError("value_range must be finite with low < high")
        return self

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class FileEntry(_Strict):
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=1)


class TensorSpec(_Strict):
    name: str
    dtype: Literal["float32", "int64"] = "float32"
    shape: list[Dim]


class GraphSignature(_Strict):
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


class OnnxInfo(_Strict):
    opset: int = Field(ge=7)
    ir_version: int = Field(ge=3)
    generator: GraphSignature
    discriminator: Optional[GraphSignature] = None  # None: a generator-only model (version 2)


class Condition(_Strict):
    """A conditional model p(x | c) (the paper's section 7): both graphs take an integer class
    index in [0, classes) as the int64 input `input`, shape [batch], beside z or x."""

    classes: int = Field(ge=2, le=100000)
    names: list[str]
    input: str = "c"

    @model_validator(mode="after")
    def _names(self) -> "Condition":
        if len(self.names) != self.classes:
            raise ValueError(f"names: {len(self.names)} names for {self.classes} classes")
        if len(set(self.names)) != len(self.names):
            raise ValueError("names: must be unique")
        return self

    def index(self, label: Union[int, str]) -> int:
        """A class given by index or name -> its index; ValueError naming what is wrong."""
        if isinstance(label, bool):
            raise ValueError(f"class {label!r} is neither an index nor a name")
        if isinstance(label, int):
            if not 0 <= label < self.classes:
                raise ValueError(f"class {label} is out of range [0, {self.classes})")
            return label
        try:
            return self.names.index(label)
        except ValueError:
            raise ValueError(f"unknown class name {label!r}; classes: {', '.join(self.names)}") from None


class SourceFile(_Strict):
    """A file a packed model was made from, as it was when packed."""

    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Source(_Strict):
    """Where a packed model came from (`python -m training pack`): the files it was made from and
    the declarations of the pack command, in place of a training record."""

    kind: Literal["onnx", "torch"]
    files: dict[str, SourceFile]  # role ("generator", "discriminator", "generator_weights", ...) -> file
    declarations: dict  # the pack command's flags, as given
    tool: str  # what packed it, with its version


class TrainingInfo(_Strict):
    preset: str
    config: dict  # the resolved config, as the run wrote it
    steps: int = Field(ge=0)
    wall_time_s: float = Field(ge=0)
    torch_version: str
    seed: int


class Metric(_Strict):
    """One measured number, with how it was measured (so a reader can tell which are comparable)."""

    value: float
    stderr: Optional[float] = None
    method: str
    details: dict = Field(default_factory=dict)


class ReliabilityBin(_Strict):
    """One bin of a reliability curve: samples whose realness fell in [low, high)."""

    low: float
    high: float
    count: int = Field(ge=0)
    mean_realness: Optional[float] = None  # None for an empty bin
    share_real: Optional[float] = None  # the fraction of the bin's samples that were real


class RealnessSummary(_Strict):
    """D's realness over one held-out set (real data, G's samples, or noise)."""

    n: int = Field(ge=1)
    mean: float
    std: float
    quantiles: dict[str, float]  # "p05", "p25", "p50", "p75", "p95"


class Calibration(_Strict):
    """How the served D was calibrated (Azadi et al. 2019: D trained on with G frozen) and what
    it measures on held-out data. `before` holds the same measurements of the D it started from."""

    method: str
    started_from: Literal["training", "fresh"]
    started_from_sha256: Optional[str] = None  # the discriminator.onnx it replaced
    steps: int = Field(ge=0)
    held_out: str  # what the held-out sets are
    auc: float = Field(ge=0, le=1)  # held-out real vs G's samples
    ece: float = Field(ge=0, le=1)  # expected calibration error on a balanced held-out set
    reliability: list[ReliabilityBin]
    distributions: dict[str, RealnessSummary]  # "real", "generated", "noise"
    before: dict[str, float] = Field(default_factory=dict)  # auc, ece of the starting D
    acceptance: Optional[float] = Field(None, ge=0, le=1)  # DRS acceptance on G's samples at drs_gamma


class Realness(_Strict):
    """What export measured of D on G's samples, for discriminator rejection sampling
    (Azadi et al. 2019): the largest logit seen over `measured_on` samples.

    The optional fields (all absent on a card written before calibration existed) say which D is
    served: the one trained with G, or one calibrated after training (`calibration`), and the
    DRS `drs_gamma` chosen at calibration for a `target_acceptance` rate on G's samples."""

    max_logit: float
    measured_on: int = Field(ge=1)
    discriminator: Literal["training", "calibrated"] = "training"
    calibration: Optional[Calibration] = None
    drs_gamma: Optional[float] = Field(None, ge=-50, le=50)
    target_acceptance: Optional[float] = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _calibrated(self) -> "Realness":
        if (self.discriminator == "calibrated") != (self.calibration is not None):
            raise ValueError("a calibrated discriminator comes with its calibration record, and only it")
        return self


class ModelCard(_Strict):
    schema_version: Literal[1, 2] = SCHEMA_VERSION
    name: str = Field(pattern=NAME_PATTERN)
    description: str
    dataset: str
    latent: Latent
    sample: Sample
    files: dict[Literal["generator", "discriminator"], FileEntry]
    onnx: OnnxInfo
    realness: Optional[Realness] = None  # present exactly when there is a discriminator
    training: Optional[TrainingInfo] = None  # a trained model's record ...
    source: Optional[Source] = None  # ... or a packed model's origin (version 2)
    condition: Optional[Condition] = None  # a conditional model's classes (version 2)
    metrics: dict[str, Metric] = Field(default_factory=dict)
    created_at: datetime

    @model_validator(mode="after")
    def _consistent(self) -> "ModelCard":
        if "generator" not in self.files:
            raise ValueError("files: missing the generator entry")
        for role, entry in self.files.items():
            if entry.name != GRAPH_FILES[role]:
                raise ValueError(f"files.{role}: must be named {GRAPH_FILES[role]}")
        has_d = "discriminator" in self.files
        if has_d != (self.onnx.discriminator is not None):
            raise ValueError("onnx.discriminator: must be given exactly when files has a discriminator")
        if has_d != (self.realness is not None):
            raise ValueError("realness: must be given exactly when there is a discriminator")
        if self.schema_version == 1:
            # Version 1 cards were all written by our exporter: both graphs and a training record.
            missing = [k for k in ("discriminator", "training") if not (has_d if k == "discriminator" else self.training)]
            if missing:
                raise ValueError(f"schema_version 1 needs {' and '.join(missing)} (optional from version 2)")
            if self.source is not None or self.condition is not None or self.latent.shape is not None:
                raise ValueError("source, condition and latent.shape need schema_version 2")
            if self.realness.model_dump(exclude_defaults=True).keys() - {"max_logit", "measured_on"}:
                raise ValueError("realness: a calibrated discriminator's record needs schema_version 2")
        elif self.training is None and self.source is None:
            raise ValueError("training or source: a card says how its model was made")
        self._check_condition_inputs()
        return self

    def _check_condition_inputs(self) -> None:
        """Each graph's inputs are what the card's latent / sample and condition imply."""
        for role, sig in (("generator", self.onnx.generator), ("discriminator", self.onnx.discriminator)):
            if sig is None:
                continue
            if sig.inputs[0].dtype != "float32" or any(o.dtype != "float32" for o in sig.outputs):
                raise ValueError(f"onnx.{role}: its first input and its outputs must be float32")
            extra = sig.inputs[1:]
            if self.condition is None:
                if extra:
                    raise ValueError(f"onnx.{role}: inputs beyond the first need a condition section")
            elif [(t.name, t.dtype, len(t.shape)) for t in extra] != [(self.condition.input, "int64", 1)]:
                raise ValueError(f"onnx.{role}: a conditional graph takes {self.condition.input!r} int64 [batch] as its second input")

    @property
    def version(self) -> str:
        """A short content version: the first 12 hex digits of the generator's sha256."""
        return self.files["generator"].sha256[:12]

    @property
    def has_discriminator(self) -> bool:
        return "discriminator" in self.files

    @property
    def roles(self) -> list[str]:
        """The graphs this model has, generator first."""
        return [r for r in GRAPH_FILES if r in self.files]

    def expected_signature(self, role: str) -> GraphSignature:
        sig = getattr(self.onnx, role)
        if sig is None:
            raise LookupError(f"model {self.name!r} has no {role}")
        return sig


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


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
    exclude: dict = {k: True for k in ("realness", "training", "source", "condition") if getattr(card, k) is None}
    if card.onnx.discriminator is None:
        exclude["onnx"] = {"discriminator"}
    if card.latent.shape is None:
        exclude["latent"] = {"shape"}
    if card.realness is not None:  # calibration's record, absent from cards written before it
        unset = {k for k, v in card.realness.model_dump().items() if v is None}
        exclude["realness"] = unset | ({"discriminator"} if card.schema_version == 1 else set())
    return exclude


def write_card(folder: Path | str, card: ModelCard) -> Path:
    """Write the card atomically: a reader sees the old card or the new one, never half of one."""
    path = Path(folder) / CARD_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(card.model_dump_json(indent=2, exclude=_unset_optional_parts(card)) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def verify_files(folder: Path | str, card: ModelCard) -> dict[str, Path]:
    """Check each graph file's size and sha256 against the card; return role -> path."""
    folder = Path(folder)
    paths = {}
    for role, entry in card.files.items():
        path = folder / entry.name
        if not path.is_file():
            raise CardError(path, "missing")
        size = path.stat().st_size
        if size != entry.bytes:
            raise CardError(path, f"is {size} bytes, the card says {entry.bytes}")
        if sha256_of(path) != entry.sha256:
            raise CardError(path, "sha256 does not match the card (modified or corrupted)")
        paths[role] = path
    return paths


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
