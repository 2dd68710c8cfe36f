"""Peak bytes one request allocates, per answer format, at n = 4096 (tracemalloc), next to the
size of its answer: where the copies are (docs/PERFORMANCE.md) and what admission control charges
(service/admission.py's PEAK_BYTES_PER_VALUE must not undercount these).

    .venv/bin/python bench/request_memory.py                 # models/mnist, n = 4096
    .venv/bin/python bench/request_memory.py --model-dir /tmp/stand-ins/mnist --n 1024

The request runs through handlers.sample, what a worker thread runs for a large /sample (latents,
the generator, encoding); numpy, orjson and zlib allocate through Python's tracked allocators, so
their buffers are counted (onnxruntime's own arena is not: its output is copied into a numpy
array, which is).
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service import admission, handlers  # noqa: E402
from service.engine import Engine  # noqa: E402
from service.schemas import SampleRequest  # noqa: E402


def host() -> str:
    """CPU model and vector extensions, from lscpu (docs/PERFORMANCE.md states every figure's host)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown host"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    vector = [f for f in flags if f.startswith(("avx", "sse4", "fma", "amx"))]
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs, {' '.join(vector)}"


def measure(engine: Engine, body: dict) -> tuple[int, int]:
    req = SampleRequest.model_validate(body)
    handlers.sample(engine, req, 20)  # warm: caches, first-call allocations
    gc.collect()
    tracemalloc.start()
    response = handlers.sample(engine, req, 20)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return len(response.body), peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("models/mnist"))
    parser.add_argument("--n", type=int, default=4096)
    args = parser.parse_args()
    folder = args.model_dir.resolve()
    engine = Engine(folder.parent, "cpu", folder.name, 2)
    model = engine.get(folder.name)
    values = args.n * model.card.sample.size
    print(f"host: {host()}")
    print(f"model {model.name}: n = {args.n}, {model.card.sample.size} values per sample, latent {model.card.latent.dim}")
    print(f"{'request':<22}{'answer MB':>10}{'peak MB':>10}{'peak/answer':>13}{'peak B/value':>14}{'charged MB':>12}")
    formats = ["json", "npy"] + (["png"] if model.card.sample.kind == "image" else [])
    for fmt in formats:
        for scores in ((False, True) if fmt == "json" else (False,)):
            body = {"model": model.name, "n": args.n, "seed": 1, "format": fmt, "scores": scores}
            answer, peak = measure(engine, body)
            charged = admission.sample_cost(args.n, model.card.latent.dim, model.card.sample.size, fmt)
            name = fmt + (" +scores" if scores else "")
            print(f"{name:<22}{answer / 1e6:>10.1f}{peak / 1e6:>10.1f}{peak / answer:>13.2f}"
                  f"{peak / values:>14.1f}{charged / 1e6:>12.1f}")
            if charged < peak:
                print(f"  ! admission charges less than measured for {name}: raise PEAK_BYTES_PER_VALUE[{fmt!r}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
