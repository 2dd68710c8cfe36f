"""`python -m training project MODEL_DIR IMAGE... [--steps N] [--out DIR]`: the slow, exact way
into latent space. Each image's latent is optimised through G in torch from E's guess; the answer
says how far E's one pass was from where the optimisation got (pixel and feature error, per image)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="MODEL_DIR", help="a model folder (models/<name>)")
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help=".png / .jpg / .npy files")
    parser.add_argument("--out", type=Path, required=True, help="directory for latents.npy, projection.json, the grid")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps on the latent (default 300, at most 5000)")
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate as a share of the latent's spread")
    parser.add_argument("--feature-weight", type=float, default=1.0, help="weight of the feature loss (0: pixels)")
    parser.add_argument("--class", dest="classes", default=None, help="a conditional model's class (name or index)")
    parser.add_argument("--resize", action="store_true", help="resize images of another size (said in the answer)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


MAX_STEPS = 5000


def run(args: argparse.Namespace) -> int:
    from models.card import CardError
    from training.graph_torch import GraphOpError
    from training.projection.images import ProjectInputError, class_indices, read_images

    if not 1 <= args.steps <= MAX_STEPS:
        return _fail(f"--steps: must be in 1..{MAX_STEPS}, got {args.steps}")
    if not args.lr > 0 or not args.feature_weight >= 0:
        return _fail("--lr must be > 0 and --feature-weight >= 0")
    try:
        import torch

        from training.projection.project import Projector

        if args.threads:
            torch.set_num_threads(args.threads)
        projector = Projector(args.folder)
        x, sources, notes = read_images(projector.card, args.images, resize=args.resize)
        c = class_indices(projector.card, args.classes, len(x))
        result = projector.project(
            x,
            c,
            steps=args.steps,
            lr=args.lr,
            feature_weight=args.feature_weight,
            seed=args.seed,
            progress=not args.quiet,
        )
        _write(args.out, projector.card, sources, x, result, notes)
    except (CardError, GraphOpError, ProjectInputError, OSError) as e:
        return _fail(str(e))
    for note in notes:
        print(f"project: {note}", file=sys.stderr)
    print(
        f"{args.out}: {len(x)} images; pixel MSE {result.pixel_start.mean():.4g} from {result.started_from} -> "
        f"{result.pixel.mean():.4g} projected"
        + (
            f"; feature distance {result.feature_start.mean():.4g} -> {result.feature.mean():.4g}"
            if result.feature is not None
            else ""
        )
    )
    return 0


def _fail(message: str) -> int:
    print(f"project: error: {message}", file=sys.stderr)
    return 2


def _write(out: Path, card, sources: list[str], x, result, notes) -> None:
    import numpy as np

    from training.grid import save_image_grid

    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "latents.npy", result.latent)
    np.save(out / "start_latents.npy", result.start)
    if card.sample.kind == "image":
        rows = np.concatenate([x, result.start_x, result.x])  # image, start, projected: one row each
        save_image_grid(rows, out / "projection.png", tuple(card.sample.value_range), ncol=len(x))
    per_image = []
    for i in range(len(x)):
        entry = {
            "source": sources[i],
            "pixel_mse_start": float(result.pixel_start[i]),
            "pixel_mse": float(result.pixel[i]),
        }
        if result.feature is not None:
            entry |= {
                "feature_distance_start": float(result.feature_start[i]),
                "feature_distance": float(result.feature[i]),
            }
        per_image.append(entry)
    record = {
        "model": card.name,
        "space": "w" if card.style is not None else "z",
        "started_from": result.started_from,
        "notes": notes,
        "images": per_image,
    }
    partial = out / ".projection.json.partial"
    partial.write_text(json.dumps(record, indent=1))
    partial.replace(out / "projection.json")
