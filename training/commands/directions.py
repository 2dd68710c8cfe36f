"""`python -m training directions MODEL_DIR [--principal K] [--samples N]`: editing directions in
the model's latent space (GANSpace's principal directions, and class directions where the project's
classifier labels its samples), written to directions.json beside its graphs and recorded on the card."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="MODEL_DIR", help="a model folder (models/<name>)")
    parser.add_argument("--principal", type=int, default=10, help="principal directions to keep (default 10)")
    parser.add_argument("--samples", type=int, default=5000, help="latents drawn (default 5,000)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from models.card import CardError
    from training.directions.find import find
    from training.directions.store import write_directions
    from training.encoder.pairs import FolderGraphs

    if args.principal < 1 or args.samples < 100:
        print("directions: error: --principal must be >= 1 and --samples >= 100", file=sys.stderr)
        return 2
    try:
        found = find(FolderGraphs(args.folder), samples=args.samples, k=args.principal, seed=args.seed)
        path = write_directions(args.folder, found)
    except (CardError, OSError, ValueError) as e:
        print(f"directions: error: {e}", file=sys.stderr)
        return 2
    print(f"{path}: {', '.join(d.name for d in found)}")
    return 0
