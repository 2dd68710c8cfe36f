"""What the user declares about a generator (and discriminator) against what the graphs say.

A graph says its input and output names, dtypes and (some) shapes; it cannot say how z is drawn,
what range G's values are in, or what the classes are called. The user declares those with flags;
`reconcile` fills in what the graphs say and refuses any declaration that contradicts them, with a
`PackError` naming the flag and the graph's value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

from models.card import Condition, GraphSignature, Latent, Sample, TensorSpec
from models.packing import PackError

MAX_IMAGE_SIDE = 256  # the service's PNG grids and request limits are sized for images up to this


@dataclass(frozen=True)
class Declarations:
    """The pack command's declarations, as given (None: not given)."""

    name: str
    description: str = ""
    dataset: str = "unspecified"
    latent_dim: Optional[int] = None
    latent: str = "normal"  # normal | uniform
    latent_bounds: Optional[tuple[float, float]] = None  # uniform only; default (-1, 1)
    latent_shape: Optional[tuple[int, ...]] = None
    sample_shape: Optional[tuple[int, ...]] = None
    value_range: Optional[tuple[float, float]] = None
    kind: Optional[str] = None  # image | vector; default: image for [1 or 3, H, W]
    classes: Optional[tuple[str, ...]] = None  # class names ("0".."k-1" when given as a count)

    def record(self) -> dict:
        """The declarations made, for the card's source section (JSON-able, Nones left out)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Reconciled:
    latent: Latent
    sample: Sample
    condition: Optional[Condition]


def _shape(spec: TensorSpec) -> str:
    return "[" + ", ".join(d if isinstance(d, str) else str(d) for d in spec.shape) + "]"


def _batch_axis(spec: TensorSpec, where: str, flag: str) -> list:
    """The per-sample dims of a tensor whose first axis must be a dynamic batch axis."""
    if len(spec.shape) < 2:
        raise PackError(flag, f"{where} {spec.name!r} is {_shape(spec)}: expected [batch, ...] with a per-sample shape")
    if isinstance(spec.shape[0], int):
        raise PackError(
            flag,
            f"{where} {spec.name!r} is {_shape(spec)}: its batch axis is fixed to {spec.shape[0]}; "
            "export it with a dynamic batch axis (torch.onnx.export(..., dynamic_axes={name: {0: 'batch'}}))",
        )
    return list(spec.shape[1:])


def _per_sample(dims: list, declared: Optional[tuple[int, ...]], flag: str, what: str) -> list[int]:
    """The per-sample shape: the graph's where its dims are fixed, the declaration where they are not."""
    if declared is not None:
        declared = list(declared)
        fits = len(declared) == len(dims) and all(not isinstance(g, int) or g == d for g, d in zip(dims, declared))
        if not fits:
            raise PackError(
                flag,
                f"{','.join(map(str, declared))} contradicts {what}: per sample it is [{', '.join(map(str, dims))}]",
            )
        return declared
    if not all(isinstance(d, int) for d in dims):
        raise PackError(
            flag, f"required: {what} has dynamic per-sample dims [{', '.join(map(str, dims))}]; declare them"
        )
    return list(dims)


def _class_input(sig: GraphSignature, role: str, flag: str) -> Optional[TensorSpec]:
    """The graph's int64 class input, if it has one, checked to be [batch] and second."""
    inputs = sig.inputs
    if inputs[0].dtype != "float32":
        raise PackError(
            flag,
            f"the {role}'s first input {inputs[0].name!r} is {inputs[0].dtype}; the card needs the "
            f"float32 {'z' if role == 'generator' else 'x'} first (then an int64 class input)",
        )
    if len(inputs) > 2:
        raise PackError(
            flag,
            f"the {role} takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
            "ganserve feeds one float32 input and at most one int64 class input",
        )
    if len(inputs) == 1:
        return None
    c = inputs[1]
    if c.dtype != "int64" or len(c.shape) != 1:
        raise PackError(
            flag,
            f"the {role}'s second input {c.name!r} is {c.dtype} {_shape(c)}; a class input is "
            "int64 [batch] (class indices, not one-hot vectors)",
        )
    return c


def _outputs(sig: GraphSignature, role: str, flag: str) -> TensorSpec:
    out = sig.outputs[0]
    if out.dtype != "float32":
        raise PackError(flag, f"the {role}'s output {out.name!r} is {out.dtype}, expected float32")
    return out


def reconcile(decl: Declarations, generator: GraphSignature, discriminator: Optional[GraphSignature]) -> Reconciled:
    """The card's latent, sample and condition from the declarations and the graphs' signatures."""
    # -- z: the generator's first input
    z = generator.inputs[0]
    g_class = _class_input(generator, "generator", "--generator")
    z_dims = _batch_axis(z, "generator.onnx input", "--generator")
    if (
        decl.latent_shape is None
        and decl.latent_dim is not None
        and not all(isinstance(d, int) for d in z_dims)
        and len(z_dims) == 1
    ):
        z_shape = [decl.latent_dim]  # a flat z of dynamic size: the dim declares it
    else:
        z_shape = _per_sample(
            z_dims, decl.latent_shape, "--latent-shape", f"generator.onnx input {z.name!r} {_shape(z)}"
        )
    dim = math.prod(z_shape)
    if decl.latent_dim is not None and decl.latent_dim != dim:
        raise PackError(
            "--latent-dim",
            f"{decl.latent_dim} contradicts generator.onnx input {z.name!r} {_shape(z)} ({dim} values per sample)",
        )
    if decl.latent == "uniform":
        low, high = decl.latent_bounds or (-1.0, 1.0)
    elif decl.latent_bounds is not None:
        raise PackError("--latent-bounds", "only for --latent uniform")
    else:
        low = high = None
    try:
        latent = Latent(
            dim=dim, distribution=decl.latent, low=low, high=high, shape=z_shape if z_shape != [dim] else None
        )
    except ValueError as e:
        raise PackError("--latent", str(e).splitlines()[-1]) from None

    # -- x: the generator's output
    x = _outputs(generator, "generator", "--generator")
    x_dims = _batch_axis(x, "generator.onnx output", "--generator")
    shape = _per_sample(x_dims, decl.sample_shape, "--sample-shape", f"generator.onnx output {x.name!r} {_shape(x)}")
    looks_like_image = len(shape) == 3 and shape[0] in (1, 3)
    kind = decl.kind or ("image" if looks_like_image else "vector")
    if kind == "image":
        if not looks_like_image:
            raise PackError(
                "--kind" if decl.kind else "--sample-shape",
                f"an image is [channels (1 or 3), height, width]; G's samples are {shape}",
            )
        if max(shape[1:]) > MAX_IMAGE_SIDE:
            raise PackError(
                "--sample-shape",
                f"images up to {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} are served; G's are {shape[1]}x{shape[2]}",
            )
    if len(shape) > 3:
        raise PackError("--sample-shape", f"a sample has at most 3 dimensions; G's are {shape}")
    if decl.value_range is None:
        raise PackError(
            "--value-range",
            "required: a graph cannot say what range G's values are in (a tanh output: -1,1; a sigmoid output: 0,1)",
        )
    try:
        sample = Sample(shape=shape, kind=kind, value_range=decl.value_range)
    except ValueError as e:
        raise PackError("--value-range", str(e).splitlines()[-1]) from None

    # -- the condition: a class input on G (and then on D, under the same name)
    condition = None
    if g_class is None and decl.classes is not None:
        raise PackError(
            "--classes",
            f"generator.onnx takes no class input (its inputs: "
            f"{', '.join(i.name for i in generator.inputs)}): it is not conditional",
        )
    if g_class is not None:
        if decl.classes is None:
            raise PackError(
                "--classes",
                f"required: generator.onnx takes the int64 class input {g_class.name!r}; "
                "declare the number of classes or their names",
            )
        try:
            condition = Condition(classes=len(decl.classes), names=list(decl.classes), input=g_class.name)
        except ValueError as e:
            raise PackError("--classes", str(e).splitlines()[-1]) from None

    if discriminator is not None:
        _check_discriminator(discriminator, shape, condition)
    return Reconciled(latent, sample, condition)


def _check_discriminator(sig: GraphSignature, shape: list[int], condition: Optional[Condition]) -> None:
    x = sig.inputs[0]
    d_class = _class_input(sig, "discriminator", "--discriminator")
    dims = _batch_axis(x, "discriminator.onnx input", "--discriminator")
    if len(dims) != len(shape) or any(isinstance(d, int) and d != s for d, s in zip(dims, shape)):
        raise PackError("--discriminator", f"its input {x.name!r} is {_shape(x)}, but G's samples are {shape}")
    if condition is None and d_class is not None:
        raise PackError("--discriminator", f"it takes the class input {d_class.name!r} but the generator takes none")
    if condition is not None:
        if d_class is None:
            raise PackError(
                "--discriminator",
                f"the generator is conditional (input {condition.input!r}) but the discriminator takes no class input",
            )
        if d_class.name != condition.input:
            raise PackError(
                "--discriminator",
                f"its class input is {d_class.name!r}, the generator's {condition.input!r}: "
                "ganserve feeds both graphs the same named class input",
            )
    out = _outputs(sig, "discriminator", "--discriminator")
    if len(out.shape) not in (1, 2) or isinstance(out.shape[0], int) or (len(out.shape) == 2 and out.shape[1] != 1):
        raise PackError(
            "--discriminator",
            f"its output {out.name!r} is {_shape(out)}: expected one logit per sample, [batch, 1] or [batch]",
        )
