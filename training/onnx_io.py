"""One torch module to one single-file ONNX graph that the pinned onnxruntime loads, and back.

The pitfalls this file exists for (see ../shared/STACK.md): torch 2.13 exports with the dynamo
exporter, which writes weights to a side file unless `external_data=False` and fixes the batch
axis when the example batch is 1; onnx 1.23 may stamp an IR version newer than onnxruntime 1.31
reads. So: example batch of 2, a named dynamic batch axis, the IR version set explicitly, and a
real onnxruntime session opened on the result before anyone relies on it.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from models.card import GraphSignature, TensorSpec

# Opset 18 is the dynamo exporter's native one (no version conversion pass) and onnxruntime 1.31
# runs it; IR version 10 is what opset 18 needs, well under the 13 that onnxruntime 1.31 reads.
OPSET = 18
IR_VERSION = 10
BATCH_AXIS = "batch"
# The card's dtypes (models/card.py DTYPES) as onnx and onnxruntime name them.
_ONNX_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64"}
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(int64)": "int64"}


class OnnxExportError(RuntimeError):
    """A graph that could not be exported, or that does not load or agree with torch."""


@contextlib.contextmanager
def _quiet_exporter():
    # The exporter logs that torchvision is missing (irrelevant here) and a deprecation inside
    # torch itself; neither is actionable for a user of `python -m training export`.
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            # Two inputs sharing the batch axis (a conditional graph): the exporter notes it names it once.
            warnings.filterwarnings("ignore", message="# The axis name: batch will not be used", category=UserWarning)
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _cached_torchlib_registry():
    """Build the exporter's aten -> ONNX registry once per process instead of once per graph.

    torch 2.13 rebuilds it on every `torch.onnx.export` call by parsing the source of ~1,000
    onnxscript functions: about half of each export's time for our small networks (measured:
    ~1.7 s of ~3 s per graph on this machine). Export never mutates the registry unless given a
    custom translation table (we pass none), so one instance per opset is equivalent. If a torch
    upgrade moves this internal, export still works, only slower.
    """
    try:
        from torch.onnx._internal.exporter._registration import ONNXRegistry
    except ImportError:
        yield
        return
    original = ONNXRegistry.__dict__.get("from_torchlib")
    if not isinstance(original, classmethod):
        yield
        return
    build = original.__func__

    def from_torchlib(cls, *args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        if key not in _REGISTRIES:
            _REGISTRIES[key] = build(cls, *args, **kwargs)
        return _REGISTRIES[key]

    ONNXRegistry.from_torchlib = classmethod(from_torchlib)
    try:
        yield
    finally:
        ONNXRegistry.from_torchlib = original


# Registries by from_torchlib's arguments; module-level so the cache outlives one export.
_REGISTRIES: dict = {}


def export_graph(
    module: nn.Module,
    example: torch.Tensor | tuple[torch.Tensor, ...],
    input_name: str | tuple[str, ...],
    output_name: str,
    optimize: bool = True,
) -> onnx.ModelProto:
    """Export `module` (already in eval mode, on the CPU, float32) with a dynamic batch axis.

    Several inputs (a conditional network's x and class c) are given as tuples; they share the one
    batch axis."""
    examples = example if isinstance(example, tuple) else (example,)
    names = input_name if isinstance(input_name, tuple) else (input_name,)
    return export_inputs(module, dict(zip(names, examples)), output_name, optimize)


def export_inputs(
    module: nn.Module, examples: dict[str, torch.Tensor], output_name: str, optimize: bool = True
) -> onnx.ModelProto:
    """`export_graph` for a module of several inputs (z and an int64 class, in forward's order),
    all sharing the one dynamic batch axis. `optimize=False` skips the exporter's optimizer, whose
    constant folding turns a weight used as `weight * scale` into an unnamed initializer."""
    if any(e.shape[0] < 2 for e in examples.values()):
        raise ValueError("export needs an example batch of >= 2, or the batch axis gets fixed to 1")
    batch = torch.export.Dim(BATCH_AXIS)
    with _quiet_exporter(), _cached_torchlib_registry():
        program = torch.onnx.export(
            module,
            tuple(examples.values()),
            input_names=list(examples),
            output_names=[output_name],
            dynamic_shapes=tuple({0: batch} for _ in examples),  # by position: forward's own argument names may differ
            opset_version=OPSET,
            external_data=False,
            dynamo=True,
            verbose=False,
            optimize=optimize,
        )
    proto = program.model_proto
    proto.ir_version = IR_VERSION
    # Exporter bookkeeping (original node names, export-time specs) is noise in a served artifact.
    for value in list(proto.graph.input) + list(proto.graph.output):
        del value.metadata_props[:]
    onnx.checker.check_model(proto, full_check=True)
    return proto


def save_graph(proto: onnx.ModelProto, path: Path) -> None:
    """Write one self-contained file: every weight inside it, nothing beside it."""
    data = proto.SerializeToString()
    if len(data) >= 2**31:
        raise OnnxExportError(f"{path.name}: the graph is over 2 GB, too large for one ONNX file")
    path.write_bytes(data)


def signature_of(proto: onnx.ModelProto) -> GraphSignature:
    """The graph's inputs and outputs as the card records them (dynamic dims by name)."""

    def spec(value: onnx.ValueInfoProto) -> TensorSpec:
        tensor = value.type.tensor_type
        dtype = _ONNX_DTYPES.get(tensor.elem_type)
        if dtype is None:
            raise OnnxExportError(
                f"{value.name}: dtype {onnx.TensorProto.DataType.Name(tensor.elem_type)}, "
                "expected float32 (or int64 for a class input)"
            )
        dims = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in tensor.shape.dim]
        return TensorSpec(name=value.name, dtype=dtype, shape=dims)

    return GraphSignature(inputs=[spec(v) for v in proto.graph.input], outputs=[spec(v) for v in proto.graph.output])


def session_signature(session: ort.InferenceSession) -> GraphSignature:
    """What onnxruntime itself sees in the file: the check the service repeats at load time."""

    def specs(args) -> list[TensorSpec]:
        out = []
        for a in args:
            if a.type not in _ORT_DTYPES:
                raise OnnxExportError(f"{a.name}: onnxruntime sees {a.type}, expected tensor(float) or tensor(int64)")
            out.append(
                TensorSpec(
                    name=a.name, dtype=_ORT_DTYPES[a.type], shape=[d if isinstance(d, int) else str(d) for d in a.shape]
                )
            )
        return out

    return GraphSignature(inputs=specs(session.get_inputs()), outputs=specs(session.get_outputs()))


def cpu_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """A CPU-only session on the saved file (not the in-memory proto: the file is what ships).
    `threads`: intra-op threads, 0 for onnxruntime's default."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own untyped errors
        raise OnnxExportError(f"{path.name}: onnxruntime cannot load it ({e})") from None


def run_batched(
    session: ort.InferenceSession, x: np.ndarray, batch: int = 1000, c: np.ndarray | None = None
) -> np.ndarray:
    """Run a single-output session over `x` in chunks of `batch` rows; a conditional graph's second
    input (the int64 class, (N,)) is fed `c` row for row."""
    names = [i.name for i in session.get_inputs()]
    if (c is not None) != (len(names) == 2):
        raise ValueError(
            f"run_batched: the graph takes {', '.join(names)}; "
            + ("no class was given" if c is None else "a class was given")
        )

    def feed(i: int) -> dict:
        return {names[0]: x[i : i + batch]} if c is None else {names[0]: x[i : i + batch], names[1]: c[i : i + batch]}

    parts = [session.run(None, feed(i))[0] for i in range(0, len(x), batch)]
    return np.concatenate(parts, axis=0)
