"""The limit of a model's generator on this host, over every engine and layout the server can take:
onnxruntime (the session options we serve with), the OpenVINO runtime on the same ONNX file, and
torch on the same network (what bench/baseline_torch_server.py runs); each as one session with all
cores, and as one single-threaded session per core in as many processes fed at once (what
GANSERVE_WORKERS = cores gives). The best of all is the limit every x best is stated against
(bench/README.md#how-to-measure); the sgemm peak (bench/host.py) says how far that is from the
physical one.

    .venv/bin/python bench/raw_engine.py --compare --model mnist --n 1 64 1024
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.card import load_model_folder
from service.core import latents
from service.runtime import backends
from service.runtime.providers import serving_options

ENGINES = ("onnxruntime", "openvino", "torch")


def generator_flops(path: Path) -> float | None:
    """FLOPs per sample of an MLP generator (2 x the weights of its MatMul/Gemm layers); None when
    the graph has convolutions, whose cost depends on shapes this does not follow."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    if any(node.op_type.startswith("Conv") for node in graph.node):
        return None
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    total = 0
    for node in graph.node:
        if node.op_type in ("MatMul", "Gemm"):
            w = next((weights[name] for name in node.input if name in weights and weights[name].ndim == 2), None)
            total += 2 * w.size if w is not None else 0
    return float(total) or None


def _runner(engine: str, folder: Path, threads: int) -> Callable[[np.ndarray], object]:
    card, paths = load_model_folder(folder)
    z_shape = card.latent.graph_shape
    if engine == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(
            str(paths["generator"]), serving_options(threads), providers=["CPUExecutionProvider"]
        )
        name = session.get_inputs()[0].name
        return lambda z: session.run(None, {name: z.reshape(len(z), *z_shape)})
    if engine == "openvino":
        session = backends.OpenVinoSession(paths["generator"], threads)
        name = session.get_inputs()[0].name
        return lambda z: session.run(None, {name: z.reshape(len(z), *z_shape)})
    import torch

    from training.config import TrainConfig
    from training.networks import build_generator

    torch.set_num_threads(threads)
    config = TrainConfig.from_dict(card.training.config)
    G = build_generator(config.network).eval()

    def run(z: np.ndarray) -> object:
        with torch.inference_mode():
            return G(torch.from_numpy(z)).numpy()

    return run


def available(engine: str, folder: Path) -> str | None:
    """None when `engine` can run this model here, else why not."""
    if engine == "openvino" and not backends.openvino_available():
        return "OpenVINO is not installed (the openvino extra)"
    if engine == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            return "torch is not installed (the train extra)"
        card, _ = load_model_folder(folder)
        if card.training is None:
            return "a packed model: no network config to rebuild in torch"
    return None


def _rate(run: Callable, z: np.ndarray, seconds: float) -> float:
    run(z)
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        run(z)
        calls += 1
    return len(z) * calls / (time.perf_counter() - start)


def _worker(engine: str, folder: str, n: int, seconds: float, barrier, results) -> None:
    run = _runner(engine, Path(folder), 1)
    card, _ = load_model_folder(Path(folder))
    z = latents.draw(latents.generator(0), card.latent, n)
    run(z)
    barrier.wait()  # every process starts timing together, so they really share the cores
    results.put(_rate(run, z, seconds))


def per_core_rate(engine: str, folder: Path, n: int, seconds: float, cores: int) -> float:
    """Samples/s of `cores` processes, one single-threaded session each, run at the same time."""
    ctx = mp.get_context("spawn")  # no inherited thread pools
    barrier, results = ctx.Barrier(cores), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(engine, str(folder), n, seconds, barrier, results)) for _ in range(cores)
    ]
    for p in procs:
        p.start()
    rates = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    return float(sum(rates))


def compare(folder: Path, sizes: list[int], seconds: float, cores: int) -> dict:
    """{engine: {layout: {n: samples/s}} | why it cannot run}, for layouts 'one session, all
    cores' and 'a session per core'."""
    card, _ = load_model_folder(folder)
    out: dict = {}
    for engine in ENGINES:
        why = available(engine, folder)
        if why:
            out[engine] = why
            continue
        run = _runner(engine, folder, cores)
        layouts = {
            "all_cores": {n: _rate(run, latents.draw(latents.generator(0), card.latent, n), seconds) for n in sizes}
        }
        if cores > 1:
            layouts["per_core"] = {n: per_core_rate(engine, folder, n, seconds, cores) for n in sizes}
        out[engine] = layouts
    return out


def best(results: dict, n: int) -> tuple[str, float]:
    """The fastest engine and layout at n, and its samples/s: the limit."""
    options = [
        (f"{e} {layout}", rates[n])
        for e, layouts in results.items()
        if isinstance(layouts, dict)
        for layout, rates in layouts.items()
    ]
    return max(options, key=lambda o: o[1])


def report(folder: Path, results: dict, sizes: list[int], peak_gflops: float | None) -> str:
    flops = generator_flops(load_model_folder(folder)[1]["generator"])
    lines = [f"{'engine':<12} {'layout':<10} " + " ".join(f"{f'n={n}':>12}" for n in sizes)]
    for engine, layouts in results.items():
        if not isinstance(layouts, dict):
            lines.append(f"{engine:<12} {'-':<10} ({layouts})")
            continue
        for layout, rates in layouts.items():
            lines.append(f"{engine:<12} {layout:<10} " + " ".join(f"{rates[n]:>12,.0f}" for n in sizes))
    for n in sizes:
        name, rate = best(results, n)
        share = ""
        if flops and peak_gflops:
            share = f"; {rate * flops / 1e9:.1f} GFLOP/s = {rate * flops / 1e9 / peak_gflops:.0%} of the sgemm peak {peak_gflops:.1f}"
        lines.append(f"limit at n={n}: {name}, {rate:,.0f} samples/s{share}")
    if flops:
        lines.append(f"({flops / 1e6:.2f} MFLOP per sample; sgemm peak measured with torch on all cores)")
    return "\n".join(lines)


def mean_ratio(a: dict, b: dict) -> float:
    return math.exp(np.mean([math.log(a[n] / b[n]) for n in a]))
