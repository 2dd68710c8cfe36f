"""The practical limit: a model's generator run by onnxruntime alone, in one process, on pre-drawn
latents, with the service's intra-op thread count (cores / workers). Timed twice, with the
service's session options (no spin-waiting) and with onnxruntime's defaults (spinning); the
limit (`ort`) is the faster of the two, so the service is never compared to a handicapped engine.

    .venv/bin/python bench/raw_engine.py --models-dir /tmp/gsb/models --model mnist --n 1 64 1024

`--iobinding` also times the run through an IOBinding with the latents already on the device and
the samples left there (`ort_bound`: the engine alone, no host copies; on a GPU, the limit there)
and with the samples copied back to the host (`ort_bound_host`: what a server must pay, since it
answers with bytes). On the CPU provider both equal a plain run within noise; on CUDA their gap to
`ort` says whether IOBinding in the engine would pay.

Besides the bare `session.run`, it times each stage the service adds to a /sample request, without
HTTP: drawing the latents (PCG64) and encoding the samples as npy, json and png. That breakdown
says where a request's time goes before any profiler is needed. `--json` prints one JSON object
(bench/serve.py reads it).

`--compare` measures the limit over every engine and layout instead (bench/engines.py):
onnxruntime, OpenVINO and torch, each as one session on all cores and as one single-threaded
session per core in as many processes, with the host (CPU model, vector extensions) and its sgemm
peak, so every figure reads as a share of the best engine and of the machine. With `--json`: one
JSON object, `samples_per_s` as {engine: {layout: {n: samples/s}} | why it cannot run here}
(bench/serve.py runs it before and after its load: the "x best" column).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

import numpy as np
import onnxruntime as ort

from models.card import load_model_folder
from service.core import encoding, latents
from service.runtime.providers import (
    CPU,
    CUDA,
    serving_options,
    session_options,
)
from service.settings import cpu_count


def rate(call: Callable[[], object], seconds: float, min_calls: int = 3) -> float:
    """Calls per second of `call`, run back to back for about `seconds` after one warm-up call."""
    return timed(call, seconds, min_calls)[0]


def timed(call: Callable[[], object], seconds: float, min_calls: int = 3) -> tuple[float, float]:
    """(calls per second, this process's CPU milliseconds per call, onnxruntime's threads included).
    CPU per call hardly moves when other work shares the cores; calls per second does."""
    call()
    calls, start, cpu = 0, time.perf_counter(), time.process_time()
    while calls < min_calls or time.perf_counter() - start < seconds:
        call()
        calls += 1
    return calls / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / calls


def bound_rates(
    session: ort.InferenceSession, z_name: str, x_name: str, z: np.ndarray, device: str, seconds: float
) -> dict[str, float]:
    """samples/s through an IOBinding: input on the device, output left there (`ort_bound`), and
    output copied to the host after each run (`ort_bound_host`)."""
    binding = session.io_binding()
    binding.bind_ortvalue_input(z_name, ort.OrtValue.ortvalue_from_numpy(z, device, 0))
    binding.bind_output(x_name, device)

    def bound() -> None:
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()  # a GPU run is asynchronous: wait for it to finish

    def bound_host() -> None:
        session.run_with_iobinding(binding)
        binding.copy_outputs_to_cpu()

    return {"ort_bound": len(z) * rate(bound, seconds), "ort_bound_host": len(z) * rate(bound_host, seconds)}


def measure(
    models_dir: Path,
    model: str,
    sizes: list[int],
    seconds: float,
    threads: int,
    stages: bool = True,
    device: str = "cpu",
    iobinding: bool = False,
) -> tuple[dict, str]:
    """{n: {"ort": samples/s of session.run (the faster option set), "ort_service" and
    "ort_spinning" (each set), "ort_cpu_ms" (CPU per run, service options), and with `stages`:
    samples/s of each extra stage}}, and the provider onnxruntime really used."""
    card, paths = load_model_folder(models_dir / model)
    providers = [CUDA, CPU] if device == "cuda" else [CPU]
    sessions = {
        "ort_service": ort.InferenceSession(str(paths["generator"]), serving_options(threads), providers=providers),
        "ort_spinning": ort.InferenceSession(
            str(paths["generator"]), session_options(threads, quiet=False), providers=providers
        ),
    }
    used = sessions["ort_service"].get_providers()[0]  # the truth, not what was asked for (STACK.md)
    sig = card.expected_signature("generator")
    z_name, x_name = sig.inputs[0].name, sig.outputs[0].name
    results = {}
    for n in sizes:
        z = latents.draw(latents.generator(0), card.latent, n)  # (n, z_dim) float32
        row = {}
        for key, session in sessions.items():
            calls_per_s, cpu_ms = timed(lambda: session.run([x_name], {z_name: z}), seconds / 2)
            row[key] = n * calls_per_s
            if key == "ort_service":
                row["ort_cpu_ms"] = cpu_ms
        row["ort"] = max(row["ort_service"], row["ort_spinning"])
        if iobinding:
            row.update(bound_rates(sessions["ort_service"], z_name, x_name, z, device, seconds / 2))
        run = lambda: sessions["ort_service"].run([x_name], {z_name: z})[0]
        if stages:
            x = run()  # (n, *sample_shape)
            row["latents"] = n * rate(lambda: latents.draw(latents.generator(1), card.latent, n), seconds / 4)
            row["npy"] = n * rate(lambda: encoding.npy_bytes(x), seconds / 4)
            row["json"] = n * rate(lambda: encoding.json_bytes({"samples": x}), seconds / 4)
            if card.sample.kind == "image":
                row["png"] = n * rate(lambda: encoding.png_grid(x, card.sample.value_range), seconds / 4)
        results[n] = row
    return results, used


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--model", default="mnist")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument(
        "--threads",
        type=int,
        default=cpu_count(),
        help="onnxruntime intra-op threads (the service: cores / workers; default all cores)",
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: the limit on a GPU machine")
    parser.add_argument("--no-stages", action="store_true", help="time session.run only")
    parser.add_argument("--iobinding", action="store_true", help="also time runs through an IOBinding (see above)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="the limit over engines (onnxruntime, OpenVINO, torch) and layouts, with the sgemm peak",
    )
    args = parser.parse_args()
    if not (args.models_dir / args.model).is_dir():
        print(f"error: {args.models_dir / args.model}: no such model folder", file=sys.stderr)
        return 2
    if args.compare:
        return compare_main(args)
    results, used = measure(
        args.models_dir, args.model, args.n, args.seconds, args.threads, not args.no_stages, args.device, args.iobinding
    )
    if args.json:
        print(json.dumps({"model": args.model, "threads": args.threads, "provider": used, "samples_per_s": results}))
        return 0
    print(
        f"{args.model} on {used}, {args.threads} intra-op threads: samples/s of each stage alone "
        "(ort_cpu_ms: CPU ms per run)"
    )
    columns = [
        "ort_service",
        "ort_spinning",
        "ort_cpu_ms",
        "ort_bound",
        "ort_bound_host",
        "latents",
        "npy",
        "json",
        "png",
    ]
    print(f"{'n':>6} " + " ".join(f"{c:>12}" for c in columns))
    for n, row in results.items():
        print(
            f"{n:>6} "
            + " ".join(f"{row[c]:>12,.{2 if c.endswith('_ms') else 0}f}" if c in row else f"{'-':>12}" for c in columns)
        )
    return 0


def compare_main(args: argparse.Namespace) -> int:
    from bench import engines, host

    folder = args.models_dir / args.model
    try:
        peak = host.sgemm_peak(args.threads)
    except ImportError:  # no torch: figures without the physical limit
        peak = None
    load_before = host.load_average()
    results = engines.compare(folder, args.n, args.seconds, args.threads)
    if args.json:  # bench/serve.py reads this (its x best column and issue 18's targets)
        try:
            flops = engines.generator_flops(load_model_folder(folder)[1]["generator"])
        except ImportError:  # no onnx: figures without the share of the sgemm peak
            flops = None
        print(
            json.dumps(
                {
                    "model": args.model,
                    "host": host.cpu(),
                    "threads": args.threads,
                    "load_average": host.load_average(),
                    "load_average_before": load_before,
                    "sgemm_gflops": peak,
                    "mflop_per_sample": flops / 1e6 if flops else None,
                    "samples_per_s": results,
                }
            )
        )
        return 0
    print(f"{args.model} generator, samples/s on {host.describe()}")
    print(engines.report(folder, results, args.n, peak))
    return 0


if __name__ == "__main__":
    sys.exit(main())
