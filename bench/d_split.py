"""What a D with two outputs costs realness: the graph as served against each output on its own.

    .venv/bin/python bench/d_split.py [--model-dir models/mnist] [--n 1024] [--threads 2] [--seconds 3]

A card with `realness.drs_ratio` "training" keeps the training D's ratio as discriminator.onnx's
second output, and the service runs that one graph: onnxruntime runs every node of a graph
whatever outputs a run asks for, so a realness request (`scores`, `min_realness`, `/score`) pays
for both D's. This times, on n of G's samples (onnxruntime, the service's session options): the
graph asked for `logit` only (what realness costs as served), the graph asked for both (what `drs`
with `scores` costs), and each output's part cut out as a graph of its own with onnx's Extractor
(what a realness request would cost if the ratio were a separate file: the follow-up this
measures); ms per run (median of runs over `seconds`) and CPU ms per run, with the host.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # bench/ and the repo

from host import describe  # noqa: E402

from models.card import load_model_folder  # noqa: E402
from service import latents  # noqa: E402
from training.drs_head import only_output  # noqa: E402
from service.engine import serving_options  # noqa: E402


def _time(run, seconds: float) -> tuple[float, float]:
    """(median wall ms, mean CPU ms) per call of `run` over about `seconds`."""
    run()  # the first run of a shape pays for planning
    walls, cpu0, t_end = [], time.process_time(), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        run()
        walls.append(1e3 * (time.perf_counter() - t))
    return statistics.median(walls), 1e3 * (time.process_time() - cpu0) / len(walls)


def main(argv: list[str] | None = None) -> int:
    import onnx
    import onnxruntime as ort

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, default=Path("models/mnist"))
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args(argv)
    card, paths = load_model_folder(args.model_dir)
    if card.realness is None or card.realness.drs_ratio != "training":
        p.error(f"{args.model_dir}: its card keeps no second D output (realness.drs_ratio is not 'training')")
    if card.condition is not None:
        p.error(f"{args.model_dir}: an unconditional model, please (this bench feeds no classes)")
    options = serving_options(args.threads)

    def session(graph):
        return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    g = session(str(paths["generator"]))
    z = latents.draw(latents.generator(0), card.latent, args.n).reshape(args.n, *card.latent.graph_shape)
    x = g.run(None, {g.get_inputs()[0].name: z})[0].reshape(args.n, *card.sample.shape)
    whole = session(str(paths["discriminator"]))
    first, ratio = card.onnx.discriminator.outputs[0].name, card.drs_output
    graph = onnx.load(str(paths["discriminator"]))
    realness_only = session(only_output(graph, first).SerializeToString())
    ratio_only = session(only_output(graph, ratio).SerializeToString())
    feed = {whole.get_inputs()[0].name: x}
    rows = {
        f"as served: asked for {first!r} only (realness)": lambda: whole.run([first], feed),
        "as served: both outputs (drs with scores)": lambda: whole.run(None, feed),
        f"cut out: {first!r} alone": lambda: realness_only.run(None, feed),
        f"cut out: {ratio!r} alone": lambda: ratio_only.run(None, feed),
    }
    print(describe())
    print(f"{card.name}: D on n = {args.n} of G's samples, {args.threads} onnxruntime threads, service session options")
    print("| run | ms per run (median) | CPU ms per run |")
    print("|---|---:|---:|")
    for label, run in rows.items():
        wall, cpu = _time(run, args.seconds)
        print(f"| {label} | {wall:.1f} | {cpu:.1f} |", flush=True)
    np.testing.assert_allclose(realness_only.run(None, feed)[0], whole.run([first], feed)[0], rtol=1e-6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
