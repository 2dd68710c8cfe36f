"""Small, real model folders for the service's tests, built with onnx.helper (no torch, no training).

Each folder satisfies models/card.py exactly like an exported one: real ONNX graphs with a dynamic
batch axis, real sha256s, a validated card. The weights are random, so samples mean nothing, but
every byte path through onnxruntime is the real one. Variants make the faults the service must
handle: a graph that fails at run time for some batch sizes, files that no longer match the card.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.card import (
    Condition,
    GraphSignature,
    Latent,
    ModelCard,
    OnnxInfo,
    Realness,
    Sample,
    TensorSpec,
    TrainingInfo,
    file_entry,
    now_utc,
    write_card,
)

OPSET, IR_VERSION = 18, 10  # what onnxruntime 1.31 reads (../shared/STACK.md)


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _class_input() -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("c", TensorProto.INT64, ["batch"])


def _add_class_offset(nodes: list, inits: list, before: str, after: str, classes: int, width: int, rng) -> None:
    """A conditional graph's class enters as a learned offset: `after` = `before` + table[c]
    (a Gather of an embedding, as conditional GANs add or join a label embedding)."""
    inits.append(numpy_helper.from_array(rng.normal(0, 1, (classes, width)).astype(np.float32), "class_table"))
    nodes += [
        helper.make_node("Gather", ["class_table", "c"], ["offset"], axis=0),
        helper.make_node("Add", [before, "offset"], [after]),
    ]


def _generator(
    z_dim: int,
    shape: list[int],
    activation: str,
    rng,
    fail_on_odd_batch: bool,
    classes: int | None = None,
    latent_shape: list[int] | None = None,
    slow_loop: int = 0,
) -> onnx.GraphProto:
    size = math.prod(shape)
    inits = [
        numpy_helper.from_array(rng.normal(0, 1 / math.sqrt(z_dim), (z_dim, size)).astype(np.float32), "W"),
        numpy_helper.from_array(np.zeros(size, np.float32), "b"),
        numpy_helper.from_array(np.array([-1, *shape], np.int64), "out_shape"),
    ]
    nodes, first = [], "z"
    if latent_shape is not None:  # z arrives as (N, *latent_shape), DCGAN's (N, dim, 1, 1)
        inits.append(numpy_helper.from_array(np.array([-1, z_dim], np.int64), "z_flat"))
        nodes.append(helper.make_node("Reshape", ["z", "z_flat"], ["z_rows"]))
        first = "z_rows"
    if fail_on_odd_batch:
        # Reshape (N, z_dim) to (2, -1) and back: onnxruntime fails at run time when N * z_dim is odd.
        inits += [
            numpy_helper.from_array(np.array([2, -1], np.int64), "pairs"),
            numpy_helper.from_array(np.array([-1, z_dim], np.int64), "rows"),
        ]
        nodes += [
            helper.make_node("Reshape", ["z", "pairs"], ["z2"]),
            helper.make_node("Reshape", ["z2", "rows"], ["z3"]),
        ]
        first = "z3"
    if slow_loop:
        # A Loop that hands z through `slow_loop` times: every run (the warm-up at load among them)
        # takes that many iterations' overhead, so the model is slow to load and to sample.
        inits += [
            numpy_helper.from_array(np.array(slow_loop, np.int64), "trips"),
            numpy_helper.from_array(np.array(True), "go"),
        ]
        body = helper.make_graph(
            [
                helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                helper.make_node("Identity", ["z_in"], ["z_out"]),
            ],
            "pass_z",
            [
                helper.make_tensor_value_info("i", TensorProto.INT64, []),
                helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                helper.make_tensor_value_info("z_in", TensorProto.FLOAT, ["batch", z_dim]),
            ],
            [
                helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                helper.make_tensor_value_info("z_out", TensorProto.FLOAT, ["batch", z_dim]),
            ],
        )
        nodes.append(helper.make_node("Loop", ["trips", "go", first], ["z_looped"], body=body))
        first = "z_looped"
    nodes += [helper.make_node("MatMul", [first, "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["a0"])]
    if classes is not None:
        _add_class_offset(nodes, inits, "a0", "a", classes, size, rng)
    else:
        nodes.append(helper.make_node("Identity", ["a0"], ["a"]))
    if activation == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", ["a"], ["act"]))
    else:
        nodes.append(helper.make_node("Identity", ["a"], ["act"]))
    nodes.append(helper.make_node("Reshape", ["act", "out_shape"], ["x"]))
    inputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", *(latent_shape or [z_dim])])]
    return helper.make_graph(
        nodes,
        "generator",
        inputs + ([_class_input()] if classes is not None else []),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape])],
        inits,
    )


def _discriminator(shape: list[int], rng, classes: int | None = None) -> onnx.GraphProto:
    size = math.prod(shape)
    inits = [
        numpy_helper.from_array(np.array([-1, size], np.int64), "flat"),
        numpy_helper.from_array(rng.normal(0, 1 / math.sqrt(size), (size, 1)).astype(np.float32), "W"),
        numpy_helper.from_array(np.zeros(1, np.float32), "b"),
    ]
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["h"])]
    if classes is not None:
        nodes.append(helper.make_node("Add", ["h", "b"], ["h1"]))
        _add_class_offset(nodes, inits, "h1", "logit", classes, 1, rng)
    else:
        nodes.append(helper.make_node("Add", ["h", "b"], ["logit"]))
    return helper.make_graph(
        nodes,
        "discriminator",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape])]
        + ([_class_input()] if classes is not None else []),
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch", 1])],
        inits,
    )


def make_model(
    models_dir: Path,
    name: str,
    *,
    kind: str = "image",
    shape=(1, 8, 8),
    z_dim: int = 16,
    distribution: str = "uniform",
    fail_on_odd_batch: bool = False,
    seed: int = 0,
    classes: int | None = None,
    discriminator: bool = True,
    latent_shape: list[int] | None = None,
    slow_loop: int = 0,
) -> Path:
    """Write models_dir/name/{generator,discriminator}.onnx + model.json; return the folder.
    `classes`: a conditional pair taking int64 `c`; `discriminator=False`: a generator-only model;
    `latent_shape`: z taken as (N, *latent_shape), e.g. DCGAN's [z_dim, 1, 1];
    `slow_loop`: the generator passes z through a Loop of that many iterations first (slow)."""
    folder = Path(models_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    shape = list(shape)
    rng = np.random.default_rng(seed)
    activation = "sigmoid" if kind == "image" else "linear"
    _save(
        _generator(z_dim, shape, activation, rng, fail_on_odd_batch, classes, latent_shape, slow_loop),
        folder / "generator.onnx",
    )
    if discriminator:
        _save(_discriminator(shape, rng, classes), folder / "discriminator.onnx")
    bounds = {"low": -math.sqrt(3), "high": math.sqrt(3)} if distribution == "uniform" else {}
    spec = lambda n, dims: TensorSpec(name=n, shape=["batch", *dims])
    class_spec = [TensorSpec(name="c", dtype="int64", shape=["batch"])] if classes is not None else []
    roles = ("generator", "discriminator") if discriminator else ("generator",)
    card = ModelCard(
        name=name,
        description=f"test model {name}: random weights, onnx.helper graphs",
        dataset="none (random weights)",
        latent=Latent(dim=z_dim, distribution=distribution, shape=latent_shape, **bounds),
        sample=Sample(shape=shape, kind=kind, value_range=(0.0, 1.0) if kind == "image" else (-4.0, 4.0)),
        files={role: file_entry(folder / f"{role}.onnx") for role in roles},
        onnx=OnnxInfo(
            opset=OPSET,
            ir_version=IR_VERSION,
            generator=GraphSignature(
                inputs=[spec("z", latent_shape or [z_dim]), *class_spec], outputs=[spec("x", shape)]
            ),
            discriminator=GraphSignature(inputs=[spec("x", shape), *class_spec], outputs=[spec("logit", [1])])
            if discriminator
            else None,
        ),
        condition=Condition(classes=classes, names=[f"class{i}" for i in range(classes)]) if classes else None,
        realness=Realness(max_logit=2.0, measured_on=1000) if discriminator else None,
        training=TrainingInfo(preset="factory", config={}, steps=0, wall_time_s=0.0, torch_version="none", seed=seed),
        created_at=now_utc(),
    )
    write_card(folder, card)
    return folder


def corrupt(folder: Path, file: str = "generator.onnx") -> None:
    """Flip one byte inside the file: its size still matches the card, so the sha256 is the check
    that must catch it (appending a byte only ever tripped the size check)."""
    path = Path(folder) / file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def install(source: Path, folder: Path) -> None:
    """A new version into a live folder: each file replaced atomically, the card last (so the
    folder fails verification, never half-loads, while the copy is under way)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(p.name for p in source.iterdir() if p.suffix == ".onnx") + ["model.json"]:
        shutil.copyfile(source / name, folder / f".{name}.tmp")
        os.replace(folder / f".{name}.tmp", folder / name)
