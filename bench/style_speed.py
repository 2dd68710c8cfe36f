"""What a style-based model's /sample costs against a single-graph model of the same size: the
same mapping and synthesis, composed into one generator.onnx (w broadcast to every layer inside
the graph), served as a single-graph model beside the style-based folder.

    .venv/bin/python bench/style_speed.py --model-dir /tmp/emoji --n 1 64 1024

Both folders are served by one in-process engine and asked the same request through the handler
POST /sample runs (bench/conditional_speed.py's rounds, alternating). The difference measured is
two graph runs with w in between (and, for truncation_psi, the w-space path in a worker thread's
numpy) against one run; the HTTP layer costs the same for both and is left out. The host is
printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import onnx  # noqa: E402
from conditional_speed import one_round  # noqa: E402
from host import describe  # noqa: E402
from onnx import TensorProto, compose, helper  # noqa: E402

from models.card import SCHEMA_VERSION, ModelCard, file_entry, read_card, write_card  # noqa: E402
from service.runtime.engine import Engine  # noqa: E402


def single_graph_twin(folder: Path, out: Path) -> Path:
    """`folder`'s mapping and synthesis as one generator.onnx in out/<name>-single, same D."""
    card = read_card(folder)
    mapping, synthesis = (onnx.load(folder / card.files[r].name) for r in ("mapping", "synthesis"))
    synthesis = compose.add_prefix(synthesis, "s_", rename_inputs=False, rename_outputs=False)  # exporters reuse names
    w_name, ws_name = card.onnx.mapping.outputs[0].name, card.onnx.synthesis.inputs[0].name
    # w [batch, w_dim] -> ws [batch, num_ws, w_dim]: Unsqueeze then Expand, as the service broadcasts.
    shape = helper.make_tensor("ws_shape", TensorProto.INT64, [3], [1, card.style.num_ws, 1])
    axes = helper.make_tensor("axis1", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Unsqueeze", ["w_in", "axis1"], ["w1"]),
        helper.make_node("Expand", ["w1", "ws_shape"], ["ws_out"]),
    ]
    middle = helper.make_model(
        helper.make_graph(
            nodes,
            "broadcast",
            [helper.make_tensor_value_info("w_in", TensorProto.FLOAT, ["batch", card.style.w_dim])],
            [
                helper.make_tensor_value_info(
                    "ws_out", TensorProto.FLOAT, ["batch", card.style.num_ws, card.style.w_dim]
                )
            ],
            initializer=[shape, axes],
        ),
        opset_imports=[helper.make_opsetid("", card.onnx.opset)],
        ir_version=card.onnx.ir_version,
    )
    first = compose.merge_models(mapping, middle, io_map=[(w_name, "w_in")])
    generator = compose.merge_models(first, synthesis, io_map=[("ws_out", ws_name)])
    generator.ir_version = card.onnx.ir_version
    twin = out / f"{card.name}-single"
    twin.mkdir(parents=True)
    onnx.save(generator, twin / "generator.onnx")
    for role in ("discriminator",):
        shutil.copyfile(folder / card.files[role].name, twin / card.files[role].name)
    data = card.model_dump(mode="json")
    onnx_info = {
        "opset": card.onnx.opset,
        "ir_version": card.onnx.ir_version,
        "discriminator": data["onnx"]["discriminator"],
    }
    onnx_info["generator"] = {
        "inputs": data["onnx"]["mapping"]["inputs"],
        "outputs": data["onnx"]["synthesis"]["outputs"],
    }
    data.update(
        schema_version=SCHEMA_VERSION,
        name=twin.name,
        style=None,
        files={
            "generator": file_entry(twin / "generator.onnx").model_dump(),
            "discriminator": data["files"]["discriminator"],
        },
        onnx=onnx_info,
    )
    write_card(twin, ModelCard.model_validate(data))
    return twin


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, required=True, help="a style-based model folder")
    p.add_argument("--n", type=int, nargs="+", default=[1, 64, 1024])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp)
        style = shutil.copytree(args.model_dir, models / args.model_dir.name)
        twin = single_graph_twin(style, models)
        engine = Engine(models, device="cpu", default_model=style.name, intra_op_threads=args.threads)
        card = engine.get(style.name).card
        labels = {"labels": "balanced"} if card.condition else {}
        out = {"host": describe(), "rows": []}
        print(out["host"], flush=True)
        for n in args.n:
            bodies = {
                "single graph": {"model": twin.name, "n": n, "seed": 7, "format": "npy", **labels},
                "style-based": {"model": style.name, "n": n, "seed": 7, "format": "npy", **labels},
                "style-based, psi 0.7": {
                    "model": style.name,
                    "n": n,
                    "seed": 7,
                    "format": "npy",
                    "truncation_psi": 0.7,
                    **labels,
                },
            }
            got = {k: [] for k in bodies}
            for _ in range(args.rounds):
                for k, body in bodies.items():
                    got[k].append(one_round(engine, body, args.seconds))
            row = {"n": n}
            for k, rounds in got.items():
                rates, cpus = zip(*rounds)
                row[k] = {
                    "samples_per_s": round(statistics.median(rates)),
                    "cpu_ms_per_request": round(statistics.median(cpus), 3),
                }
            base = row["single graph"]["samples_per_s"]
            row["style / single"] = round(row["style-based"]["samples_per_s"] / base, 3)
            row["psi / single"] = round(row["style-based, psi 0.7"]["samples_per_s"] / base, 3)
            out["rows"].append(row)
            print(json.dumps(row), flush=True)
        engine.executor.shutdown(wait=False)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
