"""Request bodies of the API, bounded in their types: BentoML validates them (400 on failure) and
publishes them in the OpenAPI schema (/docs.json). Checks that need the model (latent size,
sample shape) happen in core/requests.py, which answers the same way (see http/errors.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from annotated_types import Ge, Le
from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, StrictInt

from service.core import formats
from service.core.latents import MAX_SEED
from service.settings import get_settings

MAX_N = get_settings().max_n
MAX_NROW = 1024
DEFAULT_N = 16

ModelName = Optional[
    Annotated[
        str,
        Field(min_length=1, max_length=64, description="a model folder's name; default: the service's default model"),
    ]
]
Seed = Annotated[int, Ge(0), Le(MAX_SEED)]
FiniteFloat = Annotated[float, AllowInfNan(False)]
LatentRow = Annotated[list[FiniteFloat], Field(min_length=1, max_length=65536)]
Truncation = Optional[
    Annotated[
        float,
        Ge(0.01),
        Le(100),
        AllowInfNan(False),
        Field(description="redraw latent coordinates with |z| beyond this"),
    ]
]
Format = Literal[formats.NAMES]  # the table of answer formats (core/formats.py)
# What json and npy answers carry: float32 samples in the card's value range, or (image models)
# uint8 pixels, the range mapped onto 0..255 exactly as png and `generate --dtype uint8` map it.
Dtype = Literal["float32", "uint8"]
DTYPE_HELP = (
    "json and npy: float32 samples in the model's value range, or uint8 for image models: the range mapped "
    "onto 0..255 as png does, a quarter of the bytes (png is always 8-bit)"
)
Version = Optional[
    Annotated[
        str,
        Field(
            min_length=1,
            max_length=64,
            description=("pin the model's version (as /models reports it): 409 when that version is no longer served"),
        ),
    ]
]
Nrow = Optional[Annotated[int, Ge(1), Le(MAX_NROW), Field(description="png: images per row of the grid")]]
# A class of a conditional model: its index, or its name (checked against the model's card).
ClassLabel = Union[Annotated[StrictInt, Ge(0)], Annotated[str, Field(min_length=1, max_length=64)]]
Labels = Optional[Union[ClassLabel, Annotated[list[ClassLabel], Field(min_length=1, max_length=MAX_N)]]]
LABELS_HELP = (
    "a conditional model's classes: one class (index or name) for every sample, a list of n classes, or "
    '"balanced" (classes in turn; a png grid gets one class per row); drawn from the seed when absent'
)


class _Request(BaseModel):
    # An unknown key is a typo (`"seeed": 1`): answer 400 naming it rather than ignore it.
    model_config = ConfigDict(extra="forbid")


# ---- w space: style-based models only (core/style.py) ----
Psi = Optional[
    Annotated[
        float,
        Ge(-1),
        Le(2),
        AllowInfNan(False),
        Field(description="style-based models: truncation in w, w' = w_avg + psi (w - w_avg); 1 = none, 0 = w_avg"),
    ]
]
Cutoff = Optional[
    Annotated[
        int, Ge(1), Le(1024), Field(description="truncation_psi applies to the first this many layers (default: all)")
    ]
]


class Mix(_Request):
    """Style mixing: the layers from `from_layer` on take the styles of the seed `seed`'s samples."""

    seed: Seed
    from_layer: Annotated[int, Ge(0), Le(1023)]


class Edit(_Request):
    """A move along one of the model's editing directions (GET /models lists them)."""

    direction: Annotated[str, Field(min_length=1, max_length=64)]
    amount: Annotated[float, Ge(-100), Le(100), AllowInfNan(False)]


Edits = Optional[
    Annotated[
        list[Edit],
        Field(
            min_length=1,
            max_length=32,
            description="moves along the model's editing directions, added to each latent (z, or w): "
            "latent + sum(amount x direction), directions unit length",
        ),
    ]
]
WRows = Optional[
    Annotated[
        list[Any],
        Field(
            min_length=1,
            max_length=MAX_N,
            description="style-based models: w in place of latents, n rows of w_dim, or of num_ws x w_dim (one w per layer)",
        ),
    ]
]


class SampleRequest(_Request):
    model: ModelName = None
    version: Version = None
    n: Optional[Annotated[int, Ge(1), Le(MAX_N)]] = Field(
        None, description=f"how many samples (default: len(latents), else {DEFAULT_N})"
    )
    seed: Optional[Seed] = Field(None, description="latent seed; drawn and returned when absent")
    latents: Optional[list[LatentRow]] = Field(
        None, max_length=MAX_N, description="explicit latents, n x z_dim (instead of a seed)"
    )
    truncation: Truncation = None
    format: Format = "json"
    dtype: Dtype = Field("float32", description=DTYPE_HELP)
    nrow: Nrow = None
    scores: bool = Field(False, description="json: add D's realness (and logit) of each sample")
    min_realness: Optional[Annotated[float, Ge(0), Le(1)]] = Field(
        None,
        description="keep only samples with realness >= this (a hard threshold: it can drop whole modes; drs is the recommended filter)",
    )
    drs: bool = Field(False, description="discriminator rejection sampling (Azadi et al. 2019): the recommended filter")
    drs_gamma: Optional[Annotated[float, Ge(-50), Le(50)]] = Field(
        None,
        description="DRS acceptance shift, higher is stricter; default: the model card's realness.drs_gamma (else 0)",
    )
    labels: Labels = Field(None, description=LABELS_HELP)
    truncation_psi: Psi = None
    truncation_cutoff: Cutoff = None
    mix: Optional[Mix] = Field(None, description="style-based models: the styles of a second seed from a layer on")
    return_w: bool = Field(False, description="style-based models, json: add the ws (n, num_ws, w_dim) of each sample")
    w: WRows = None
    edit: Edits = None


class Along(_Request):
    """A walk along one editing direction: from amounts[0] to amounts[1] units of it."""

    direction: Annotated[str, Field(min_length=1, max_length=64)]
    amounts: Annotated[list[Annotated[float, Ge(-100), Le(100), AllowInfNan(False)]], Field(min_length=2, max_length=2)]


class InterpolateRequest(_Request):
    model: ModelName = None
    version: Version = None
    # Lists of exactly two, not tuples: a tuple's schema has `prefixItems` and no `items`, on which
    # BentoML's own clients fail (KeyError 'items') while building any request to the API.
    seeds: Optional[Annotated[list[Seed], Field(min_length=2, max_length=2)]] = Field(
        None, description="the two ends as seeds (each: its first latent)"
    )
    latents: Optional[Annotated[list[LatentRow], Field(min_length=2, max_length=2)]] = Field(
        None, description="the two ends as latents, each z_dim long"
    )
    steps: Annotated[int, Ge(2), Le(MAX_N)] = 8
    method: Optional[Literal["slerp", "lerp"]] = Field(
        None, description="slerp in z (the default), or lerp; a style-based model walks in w (default lerp)"
    )
    truncation: Truncation = None
    truncation_psi: Psi = None
    along: Optional[Along] = Field(
        None, description="walk from one seed's latent along an editing direction (give `seed`, not `seeds`)"
    )
    seed: Optional[Seed] = Field(None, description="with `along`: the seed whose first latent the walk starts from")
    format: Format = "json"
    nrow: Nrow = None
    scores: bool = False
    labels: Labels = Field(
        None,
        description="a conditional model's class for the whole walk (index or name; a list "
        "must name one class): the graphs take the class as an integer, so a "
        "walk between two classes is refused; drawn from the first seed when absent",
    )


class ScoreRequest(_Request):
    """The JSON form of /score (the .npy and PNG forms send the samples as the body)."""

    model: ModelName = None
    version: Version = None
    samples: list[Any] = Field(description="n samples, each of the model's sample shape (nested lists of numbers)")
    labels: Labels = Field(
        None,
        description="a conditional model's class of each sample, for D(x | c): one class, a "
        'list of n, or "balanced" (required for a conditional model)',
    )


MAX_REFINE = 256


class InvertRequest(_Request):
    """The JSON form of /invert (the .npy and PNG forms send the images as the body and these
    fields as query parameters)."""

    model: ModelName = None
    version: Version = None
    samples: list[Any] = Field(description="n images (or samples), each of the model's sample shape (nested lists)")
    labels: Labels = Field(
        None,
        description='a conditional model\'s class of each image (required for one): one, a list of n, or "balanced"',
    )
    format: Format = Field("json", description="json: latents, errors and reconstructions; npy or png: reconstructions")
    refine: Annotated[int, Ge(0), Le(MAX_REFINE)] = Field(
        0, description="candidates per image of a batched random search through G around E's guess (0: E alone)"
    )
    seed: Optional[Seed] = Field(
        None, description="the refine search's seed (default 0): the same request, the same answer"
    )
    scores: bool = Field(False, description="json: D's realness of each reconstruction")
