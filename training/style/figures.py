"""The figures that show what a style-based model's w space does, drawn from its model folder
through onnxruntime (the graphs that ship, as the service runs them):

- psi_sweep.png: one row per psi (0, 0.5, 0.7, 1 by default), the same seeds in every column, so a
  row shows how truncation towards w_avg trades variety for typicality;
- mixing.png: the top row holds the column seeds' images, the left column the row seeds'; cell
  (r, c) takes row r's styles before `from_layer` (coarse) and column c's from it on (fine).
- grid_zoom.png: 64 samples at 4x, nearest-neighbour, to look for a checkerboard.

Latents come from numpy's PCG64 with each seed, as the service draws them (first latent of a seed's
stream, N(0, 1)); classes are given (0 by default) for a conditional model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from models.card import load_model_folder
from training.grid import save_image_grid
from training.onnx_io import cpu_session

PSIS = (0.0, 0.5, 0.7, 1.0)


class StyleFolder:
    """A style-based model folder's graphs and w_avg, run as the service runs them."""

    def __init__(self, folder: Path):
        self.card, paths = load_model_folder(folder)
        if self.card.style is None:
            raise ValueError(f"{folder}: not a style-based model (its card has no style section)")
        self.mapping, self.synthesis = cpu_session(paths["mapping"]), cpu_session(paths["synthesis"])
        self.w_avg = np.load(Path(folder) / self.card.style.w_avg.name, allow_pickle=False)
        self.num_ws = self.card.style.num_ws

    def w(self, seeds: list[int], label: int) -> np.ndarray:
        """The w of each seed's first latent (as /sample with n 1 and that seed): (len(seeds), w_dim)."""
        z = np.stack([np.random.Generator(np.random.PCG64(s)).standard_normal(self.card.latent.dim) for s in seeds])
        feeds = {self.card.onnx.mapping.inputs[0].name: z.astype(np.float32)}
        if self.card.condition is not None:
            feeds[self.card.condition.input] = np.full(len(seeds), label, np.int64)
        return self.mapping.run(None, feeds)[0]

    def draw(self, ws: np.ndarray) -> np.ndarray:
        return self.synthesis.run(None, {self.card.onnx.synthesis.inputs[0].name: ws.astype(np.float32)})[0]

    def broadcast(self, w: np.ndarray) -> np.ndarray:
        return np.repeat(w[:, None], self.num_ws, axis=1)


def psi_sweep(model: StyleFolder, seeds: list[int], psis=PSIS, label: int = 0) -> np.ndarray:
    ws = model.broadcast(model.w(seeds, label))
    rows = [model.draw(model.w_avg + psi * (ws - model.w_avg)) for psi in psis]
    return np.concatenate(rows)  # (len(psis) * len(seeds), C, H, W), row by row


def mixing(model: StyleFolder, rows: list[int], cols: list[int], from_layer: int, label: int = 0) -> np.ndarray:
    """(len(rows) + 1) x (len(cols) + 1) tiles; the corner is blank (the value range's low end)."""
    wr, wc = model.broadcast(model.w(rows, label)), model.broadcast(model.w(cols, label))
    own_r, own_c = model.draw(wr), model.draw(wc)
    blank = np.full_like(own_c[:1], model.card.sample.value_range[0])
    tiles = [blank, own_c]
    for i in range(len(rows)):
        mixed = np.repeat(wr[i : i + 1], len(cols), axis=0)
        mixed[:, from_layer:] = wc[:, from_layer:]
        tiles += [own_r[i : i + 1], model.draw(mixed)]
    return np.concatenate(tiles)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="psi sweep, mixing grid and a zoomed grid of a style-based model folder")
    p.add_argument("folder", type=Path)
    p.add_argument("--out", type=Path, required=True, help="where the PNGs go")
    p.add_argument("--seeds", default="1,2,3,4,5,6,7,8")
    p.add_argument("--mix-rows", default="11,12,13,14")
    p.add_argument("--mix-cols", default="21,22,23,24,25")
    p.add_argument("--from-layer", type=int, default=4)
    p.add_argument("--label", type=int, default=0, help="a conditional model's class for every image")
    args = p.parse_args(argv)
    model = StyleFolder(args.folder)
    ints = lambda text: [int(v) for v in text.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    vr = tuple(model.card.sample.value_range)
    seeds = ints(args.seeds)
    save_image_grid(psi_sweep(model, seeds, label=args.label), args.out / "psi_sweep.png", vr, scale=4, ncol=len(seeds))
    rows, cols = ints(args.mix_rows), ints(args.mix_cols)
    grid = mixing(model, rows, cols, args.from_layer, args.label)
    save_image_grid(grid, args.out / "mixing.png", vr, scale=4, ncol=len(cols) + 1)
    zoom = model.draw(model.broadcast(model.w(list(range(64)), args.label)))
    save_image_grid(zoom, args.out / "grid_zoom.png", vr, scale=4, ncol=8)
    print(f"wrote psi_sweep.png, mixing.png and grid_zoom.png to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
