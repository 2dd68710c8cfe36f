"""What realness and `drs` cost on a model that keeps the training D's ratio apart (ratio.onnx).

    .venv/bin/python bench/d_cost.py [--model-dir models/mnist] [--n 1024] [--threads 2] [--seconds 3]

A card with `realness.drs_ratio` "training" keeps the D trained with G as ratio.onnx beside the
calibrated discriminator.onnx (docs/DESIGN.md). This times each graph as the service opens it
(onnxruntime, the service's session options) on n of G's samples: discriminator.onnx (what a
realness request pays: `scores`, `min_realness`, `/score`), ratio.onnx (what `drs` alone pays),
and both (`drs` with `scores`); ms per run (median of runs over `seconds`) and CPU ms per run,
with the host. Until ratio.onnx, the ratio was discriminator.onnx's second output, and every
realness request paid for both D's (onnxruntime runs every node whatever outputs are asked for;
docs/PERFORMANCE.md#finding-ratio-onnx; both tables in docs/perf-log/).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # bench/ and the repo

from host import describe  # noqa: E402

from models.card import load_model_folder  # noqa: E402
from service.core import latents  # noqa: E402
from service.runtime.providers import serving_options  # noqa: E402


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
    import onnxruntime as ort

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, default=Path("models/mnist"))
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args(argv)
    card, paths = load_model_folder(args.model_dir)
    if "ratio" not in paths:
        p.error(f"{args.model_dir}: its card keeps no ratio.onnx (realness.drs_ratio is not 'training')")
    if card.condition is not None:
        p.error(f"{args.model_dir}: an unconditional model, please (this bench feeds no classes)")
    options = serving_options(args.threads)
    g, d, r = (
        ort.InferenceSession(str(paths[role]), options, providers=["CPUExecutionProvider"])
        for role in ("generator", "discriminator", "ratio")
    )
    z = latents.draw(latents.generator(0), card.latent, args.n).reshape(args.n, *card.latent.graph_shape)
    x = g.run(None, {g.get_inputs()[0].name: z})[0].reshape(args.n, *card.sample.shape)
    feed = {d.get_inputs()[0].name: x}
    rows = {
        "discriminator.onnx (realness)": lambda: d.run(None, feed),
        "ratio.onnx (drs alone)": lambda: r.run(None, feed),
        "both (drs with scores)": lambda: (d.run(None, feed), r.run(None, feed)),
    }
    print(describe())
    print(
        f"{card.name}: D's on n = {args.n} of G's samples, {args.threads} onnxruntime threads, service session options"
    )
    print("| run | ms per run (median) | CPU ms per run |")
    print("|---|---:|---:|")
    for label, run in rows.items():
        wall, cpu = _time(run, args.seconds)
        print(f"| {label} | {wall:.1f} | {cpu:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
