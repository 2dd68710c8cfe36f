"""`python -m training encoder MODEL_DIR [--steps N] [--force]`: learned inference for any model
folder (trained or packed): E trained on (G(z), z) pairs of its own graphs, G frozen, exported as
encoder.onnx beside them and recorded on the card."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="MODEL_DIR", help="a model folder (models/<name>)")
    parser.add_argument("--steps", type=int, default=3000, help="minibatches of E's training (default 3000)")
    parser.add_argument("--batch", type=int, default=128, help="pairs per minibatch (default 128)")
    parser.add_argument("--pool", type=int, default=20_000, help="pairs drawn from G once (default 20,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch and onnxruntime threads (0: their default)")
    parser.add_argument("--force", action="store_true", help="replace the folder's encoder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from models.card import CardError
    from training.encoder.export import EncoderError, add_encoder
    from training.encoder.pairs import FolderGraphs
    from training.encoder.train import train_encoder
    from training.onnx_io import OnnxExportError

    for flag in ("steps", "batch", "pool"):
        if getattr(args, flag) < 1:
            print(f"encoder: error: --{flag}: must be >= 1", file=sys.stderr)
            return 2
    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        graphs = FolderGraphs(args.folder, args.threads)
        if graphs.card.has_encoder and not args.force:
            raise EncoderError(f"{args.folder / 'encoder.onnx'}: the model has an encoder (pass --force to replace it)")
        E, stats, held = train_encoder(
            graphs, steps=args.steps, batch=args.batch, pool=args.pool, seed=args.seed, progress=not args.quiet
        )
        path = add_encoder(args.folder, E, stats, held, force=args.force)
    except (CardError, EncoderError, OnnxExportError, OSError) as e:
        print(f"encoder: error: {e}", file=sys.stderr)
        return 2
    print(
        f"{path}: latent MSE {stats.latent_mse:.4g} (latent variance {stats.latent_variance:.4g}), "
        f"reconstruction MSE {stats.reconstruction_mse:.4g} (unrelated samples {stats.unrelated_mse:.4g})"
    )
    return 0
