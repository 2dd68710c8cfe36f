"""`python -m training calibrate MODEL_DIR [--out FOLDER] [--target-acceptance R] [--steps N] ... [--retarget]`

Trains the model's D on with G frozen until it approaches D* = p_data / (p_data + p_g), measures
it on held-out data, chooses DRS's gamma for a target acceptance rate, and writes the folder with
the calibrated discriminator.onnx and the measurements on its card (training/calibrate.py).
generator.onnx is copied unchanged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from training.calibrate import CalibrationConfig

    d = CalibrationConfig()
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="an exported model folder (models/<name>)")
    parser.add_argument(
        "--out", type=Path, default=None, help="write a new model folder here (default: replace MODEL_DIR)"
    )
    parser.add_argument(
        "--target-acceptance",
        type=float,
        default=d.target_acceptance,
        help=f"DRS acceptance rate on G's samples that the recommended gamma gives (default {d.target_acceptance})",
    )
    parser.add_argument("--steps", type=int, default=d.steps, help=f"most training steps of D (default {d.steps})")
    parser.add_argument(
        "--batch", type=int, default=d.batch, help=f"real and generated samples per step (default {d.batch})"
    )
    parser.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr:g})")
    parser.add_argument(
        "--eval-every", type=int, default=d.eval_every, help=f"steps between held-out checks (default {d.eval_every})"
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help=f"held-out checks without improvement before stopping (default {d.patience})",
    )
    parser.add_argument("--no-platt", action="store_true", help="skip the Platt fit of the logit on held-out data")
    parser.add_argument(
        "--fresh", action="store_true", help="start from a freshly initialised D instead of the shipped one"
    )
    parser.add_argument(
        "--drs-ratio",
        choices=["served", "training"],
        default=d.drs_ratio,
        help="what DRS rejects by: the calibrated D's ratio ('served', default) or the D trained with G, "
        "kept beside it as ratio.onnx ('training': better where calibration learns "
        "G's artefacts, as on mnist and patches; docs/RESULTS.md section 7)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: fastest for small networks on busy cores)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument(
        "--retarget",
        action="store_true",
        help="only choose gamma again for --target-acceptance, with the D already in MODEL_DIR (no training)",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from models.card import CardError
    from training.calibrate import CalibrationConfig, CalibrationError, calibrate_model
    from training.config import ConfigError
    from training.data import DataError
    from training.onnx_io import OnnxExportError
    from training.retarget import retarget

    torch.set_num_threads(max(1, args.threads))
    try:
        if args.retarget:
            if args.out is not None:
                raise CalibrationError("--out: --retarget changes MODEL_DIR's card in place")
            gamma, accept = retarget(args.model_dir, args.target_acceptance)
            print(f"{args.model_dir}: DRS gamma {gamma:.3f}, acceptance {accept:.3f} on G's samples")
            return 0
        cfg = CalibrationConfig(
            steps=args.steps,
            batch=args.batch,
            lr=args.lr,
            eval_every=args.eval_every,
            patience=args.patience,
            target_acceptance=args.target_acceptance,
            platt=not args.no_platt,
            fresh=args.fresh,
            drs_ratio=args.drs_ratio,
        )
        r = calibrate_model(args.model_dir, cfg, out=args.out, progress=not args.quiet)
    except (CalibrationError, CardError, ConfigError, DataError, OnnxExportError, OSError) as e:
        print(f"calibrate: error: {e}", file=sys.stderr)
        return 2
    print(f"calibrated {r.folder} in {r.wall_s:.0f} s (from the {r.started_from} D, best at step {r.steps})")
    print(
        f"  held-out AUC {r.before['auc']:.3f} -> {r.after['auc']:.3f}, ECE {r.before['ece']:.3f} -> {r.after['ece']:.3f}"
    )
    print(
        f"  DRS gamma {r.gamma:.3f}: acceptance {r.acceptance:.3f} on G's samples (by the "
        f"{'training' if cfg.drs_ratio == 'training' else 'calibrated'} D's ratio)"
    )
    return 0
