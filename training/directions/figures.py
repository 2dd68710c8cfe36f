"""A grid per model of what its editing directions do: one row per direction, the same seed's
sample moved by amounts evenly from -A to A across the row (the middle column is the seed's own
sample), drawn through the folder's own graphs (onnxruntime), as /sample's edit draws them.
For unconditional image models (the class directions are made for those).

    python -m training.directions.figures models/mnist --out docs/figures/mnist-directions.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from training.encoder.pairs import FolderGraphs
from training.grid import save_image_grid


def direction_grid(folder: Path, names: list[str], amounts: np.ndarray, seed: int) -> np.ndarray:
    graphs = FolderGraphs(folder)
    data = json.loads((folder / "directions.json").read_text(encoding="utf-8"))
    vectors = {d["name"]: np.asarray(d["vector"], np.float32) for d in data["directions"]}
    z = graphs.draw_z(np.random.default_rng(seed), 1)
    start = graphs.latent_of(z, None)[0]
    rows = []
    for name in names:
        moved = start[None] + amounts[:, None].astype(np.float32) * vectors[name][None]
        lat = graphs.card.latent
        if graphs.card.style is None and lat.distribution == "uniform":
            moved = np.clip(moved, lat.low, lat.high)
        rows.append(graphs.draw_from_latent(moved.astype(np.float32), None))
    return np.concatenate(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="one row per editing direction, amounts -A..A across")
    p.add_argument("folder", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--directions", default="pc0,pc1,pc2,pc3,pc4,class:0,class:3,class:7")
    p.add_argument("--amount", type=float, default=3.0, help="A: the row goes from -A to A")
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    names = args.directions.split(",")
    tiles = direction_grid(args.folder, names, np.linspace(-args.amount, args.amount, args.steps), args.seed)
    card = FolderGraphs(args.folder).card
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_image_grid(tiles, args.out, tuple(card.sample.value_range), scale=2, ncol=args.steps)
    print(f"{args.out}: rows {', '.join(names)}; amounts -{args.amount:g}..{args.amount:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
