"""Where a PNG grid's time goes for RGB samples, beside the generator's own run.

    .venv/bin/python bench/png_rgb.py [--model-dir models/patches] [--sizes 1 64 256] [--repeats 20]

For each n: the generator's run (onnxruntime, the served session options), then the steps of
service/encoding.png_grid: value range -> uint8 (`to_uint8`), tiles into the canvas, the scanline
filter, zlib at the served level, and the whole call; medians in ms, and the PNG's size. The
process is pinned to nothing: run it on a quiet machine, and give the host's `lscpu` with figures.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.core import encoding, latents
from service.runtime.engine import Engine


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def canvas_of(tiles: np.ndarray) -> np.ndarray:
    """png_grid's canvas step alone: (n, H, W, C) uint8 tiles -> the padded grid."""
    n, h, w, c = tiles.shape
    cols = max(1, math.ceil(math.sqrt(n)))
    rows, pad = math.ceil(n / cols), encoding.GRID_PADDING
    canvas = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.uint8)
    for i, tile in enumerate(tiles):
        r, col = divmod(i, cols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = tile
    return canvas


def scanlines_of(canvas: np.ndarray) -> np.ndarray:
    """png_bytes' Sub filter for colour rows (the step before zlib)."""
    h, w, c = canvas.shape
    rows = canvas.reshape(h, w * c)
    out = np.empty((h, 1 + w * c), np.uint8)
    out[:, 0] = 1
    out[:, 1 : 1 + c] = rows[:, :c]
    np.subtract(rows[:, c:], rows[:, :-c], out=out[:, 1 + c :])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, default=Path("models/patches"))
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 256])
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    engine = Engine.from_folder(args.model_dir, device="cpu", intra_op_threads=1)
    model = engine.get(None)
    vr = tuple(model.card.sample.value_range)
    print(f"model {model.name} {model.card.sample.shape} range {vr}, 1 onnxruntime thread")
    print("    n   G run  to_uint8  canvas  filter    zlib  png_grid   bytes")
    for n in args.sizes:
        z = latents.draw(latents.generator(0), model.card.latent, n)
        x = model.generate_inline(z)
        tiles = encoding.to_uint8(x, vr).transpose(0, 2, 3, 1)
        canvas = canvas_of(tiles)
        lines = scanlines_of(canvas).tobytes()
        row = [
            median_ms(lambda: model.generate_inline(z), args.repeats),
            median_ms(lambda: encoding.to_uint8(x, vr), args.repeats),
            median_ms(lambda: canvas_of(tiles), args.repeats),
            median_ms(lambda: scanlines_of(canvas), args.repeats),
            median_ms(lambda: zlib.compress(lines, encoding.GRID_COMPRESS_LEVEL), args.repeats),
            median_ms(lambda: encoding.png_grid(x, vr), args.repeats),
        ]
        size = len(encoding.png_grid(x, vr))
        print(f"{n:5d} " + " ".join(f"{v:7.2f}" for v in row) + f"  {size:7d}")
    engine.executor.shutdown(wait=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
