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
    parser.add_argument(
        "--real-steps",
        type=int,
        default=1000,
        help="then minibatches on the folder's real training images through G (default 1000; 0: pairs only)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch and onnxruntime threads (0: their default)")
    parser.add_argument("--force", action="store_true", help="replace the folder's encoder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from models.card import CardError
    from training.data import DataError
    from training.encoder.export import EncoderError, add_encoder
    from training.encoder.pairs import FolderGraphs
    from training.encoder.train import measure, train_encoder
    from training.graph_torch import GraphOpError
    from training.onnx_io import OnnxExportError

    for flag in ("steps", "batch", "pool"):
        if getattr(args, flag) < 1:
            print(f"encoder: error: --{flag}: must be >= 1", file=sys.stderr)
            return 2
    if args.real_steps < 0:
        print("encoder: error: --real-steps: must be >= 0", file=sys.stderr)
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
        real_metrics = _on_real_images(args, graphs, E) if args.real_steps else {}
        if real_metrics:  # E changed: its pair figures are measured again, on the same held-out pairs
            stats = measure(graphs, E, held, args.steps, args.pool, args.real_steps)
        path = add_encoder(args.folder, E, stats, held, force=args.force, real_metrics=real_metrics)
    except (CardError, DataError, EncoderError, GraphOpError, OnnxExportError, OSError, ValueError) as e:
        print(f"encoder: error: {e}", file=sys.stderr)
        return 2
    print(
        f"{path}: latent MSE {stats.latent_mse:.4g} (latent variance {stats.latent_variance:.4g}), "
        f"reconstruction MSE {stats.reconstruction_mse:.4g} (unrelated samples {stats.unrelated_mse:.4g})"
    )
    return 0


def _on_real_images(args: argparse.Namespace, graphs, E) -> dict:
    """Tune E on the folder's real training images through G and judge it before and after on the
    held-out ones; {} (said on stderr) for a folder with no training record."""
    from training.encoder.export import real_image_metrics
    from training.encoder.real import Judge, real_images
    from training.encoder.train import reconstruct, tune_on_real
    from training.folder_generator import FolderGenerator

    train = real_images(graphs.card, ("train",))
    if train is None:
        print(
            f"encoder: {args.folder}: the card names no training data set, so E learns from G's pairs alone",
            file=sys.stderr,
        )
        return {}
    held = real_images(graphs.card, ("valid", "test"))
    judge = Judge(graphs.card, held, train)
    pairs_only = judge(reconstruct(graphs, E, held.x, held.c))
    G = FolderGenerator(args.folder)
    tune_on_real(E, graphs, G, train, steps=args.real_steps, pool=args.pool, seed=args.seed, progress=not args.quiet)
    tuned = judge(reconstruct(graphs, E, held.x, held.c))
    for name, before, after in (
        ("pixel MSE", pairs_only.pixel_mse, tuned.pixel_mse),
        ("feature distance", pairs_only.feature_distance, tuned.feature_distance),
        ("class kept", pairs_only.class_kept, tuned.class_kept),
    ):
        if after is not None:
            print(f"held-out real images, {name}: {before:.4g} with pairs alone, {after:.4g} after real images")
    return real_image_metrics(judge, pairs_only, tuned, args.real_steps)
