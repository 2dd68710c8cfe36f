"""`python -m training export RUN_DIR --name NAME --out models/ [--description ...] [--force]`"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a training run's output directory")
    parser.add_argument(
        "--name", required=True, help="model name: the folder under --out, and the name the service uses"
    )
    parser.add_argument("--out", type=Path, default=Path("models"), help="models directory (default: models/)")
    parser.add_argument("--description", default="", help="one line for the model card")
    parser.add_argument("--force", action="store_true", help="replace an existing model folder of that name")


def run(args: argparse.Namespace) -> int:
    # Imported here so `python -m training --help` stays quick (torch, onnx load on use only).
    from models.card import CardError
    from training.export import ExportError, export_run
    from training.onnx_io import OnnxExportError

    try:
        folder = export_run(
            args.run_dir, name=args.name, out_dir=args.out, description=args.description, force=args.force
        )
    except (ExportError, OnnxExportError, CardError, ValueError, OSError) as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 2
    print(f"exported {args.name} to {folder}")
    return 0
