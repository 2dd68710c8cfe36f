"""The parts of a model card (models/card.py): how z is drawn, what a sample is, the graphs' files
and signatures, the condition of a conditional model, where a model came from (training or
packing), its metrics, and D's realness record (calibration). Pydantic and the standard library
only, like the card itself; `models.card` re-exports every name here, so callers import from it.
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A dimension is a fixed size, or a name for a dynamic one (the batch axis is always "batch").
Dim = Union[int, str]


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
    def _bounds(self) -> Latent:
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
    def _image_shape(self) -> Sample:
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
    generator: Optional[GraphSignature] = None  # None only for a style-based model (version 3)
    mapping: Optional[GraphSignature] = None  # a style-based model's z [, c] -> w (version 3)
    synthesis: Optional[GraphSignature] = None  # ... and its ws -> x (version 3)
    encoder: Optional[GraphSignature] = None  # x [, c] -> z (w for a style-based model): learned inference
    discriminator: Optional[GraphSignature] = None  # None: a generator-only model (version 2)
    ratio: Optional[GraphSignature] = None  # ratio.onnx, the D trained with G kept for DRS (version 2)


class Style(_Strict):
    """A style-based generator (StyleGAN2/3 and ours, version 3): mapping.onnx takes z [, c] to w
    [batch, w_dim]; synthesis.onnx draws from ws [batch, num_ws, w_dim], one w per layer. w_avg,
    the mean of the mapping's outputs (float32 [w_dim], an .npy file beside the graphs), is where
    truncation pulls w: w' = w_avg + psi (w - w_avg)."""

    w_dim: int = Field(ge=1, le=65536)
    num_ws: int = Field(ge=1, le=1024)
    w_avg: FileEntry

    @model_validator(mode="after")
    def _w_avg_name(self) -> Style:
        if self.w_avg.name != "w_avg.npy":
            raise ValueError("w_avg: must be named w_avg.npy")
        return self


class Condition(_Strict):
    """A conditional model p(x | c) (the paper's section 7): both graphs take an integer class
    index in [0, classes) as the int64 input `input`, shape [batch], beside z or x."""

    classes: int = Field(ge=2, le=100000)
    names: list[str]
    input: str = "c"

    @model_validator(mode="after")
    def _names(self) -> Condition:
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
    started_from: Literal[
        "training", "calibrated", "fresh"
    ]  # "calibrated": calibrated again, on from an earlier calibration
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
    # The density ratio DRS rejects by: "served", the served D's logit (then `max_logit` is its
    # largest), or "training", the D trained with G, kept as the folder's ratio.onnx beside the
    # calibrated discriminator.onnx (then `max_logit` is ratio.onnx's largest logit). A
    # calibrated D can score realness far better and still filter worse: on mnist and patches its
    # ratio rewards the artefacts it learned to see, and DRS by it raises the Frechet distance and
    # SWD that DRS by the training D lowers (docs/RESULTS.md section 7).
    drs_ratio: Literal["served", "training"] = "served"

    @model_validator(mode="after")
    def _calibrated(self) -> Realness:
        if (self.discriminator == "calibrated") != (self.calibration is not None):
            raise ValueError("a calibrated discriminator comes with its calibration record, and only it")
        if self.drs_ratio == "training" and self.discriminator != "calibrated":
            raise ValueError(
                "drs_ratio 'training': only beside a calibrated discriminator (else the served D is the training D)"
            )
        return self
