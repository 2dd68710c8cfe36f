"""`python -m training train --preset NAME --out DIR [--set key=value ...] [--precision P] [--dry-run] [--max-steps N]`

Overrides name keys of the resolved config, dotted for nested ones (`d_optim.lr=0.01`,
`network.g_hidden=[256,256]`, `dataset_options.path=/data/mnist`); values are JSON where they parse,
else strings. An unknown key or a wrong type exits with status 2 and a message naming the key.
Running again with the same --out resumes from the run's latest checkpoint.

Under torchrun (`torchrun --nproc-per-node K -m training train ...`) every process runs this command
and together they train one run with DistributedDataParallel (training/distributed.py); the
preset's batch_size is the global batch. Errors are then prefixed with the rank that reports them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from training.precision import PRECISIONS
    from training.presets import PRESETS

    parser.add_argument(
        "--preset", required=True, choices=sorted(PRESETS), metavar="NAME", help=f"one of: {', '.join(PRESETS)}"
    )
    parser.add_argument("--out", type=Path, help="run directory (checkpoints, metrics.jsonl, grids/, config.json)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key (repeatable)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="autocast of the forward passes (the config's `precision`; default fp32): bf16, or fp16 "
        "with loss scaling on CUDA only",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config as JSON and exit")
    parser.add_argument(
        "--max-steps",
        type=int,
        metavar="N",
        help="stop at step N of the run (counted from its start, so resuming continues to N)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch CPU threads (default: torch's choice; 1 is often faster on busy machines)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    # Imported here so `python -m training --help` stays quick.
    from training.checkpoint import CheckpointError
    from training.config import ConfigError
    from training.data import DataError
    from training.presets import resolve

    overrides = list(args.overrides) + ([f"precision={args.precision}"] if args.precision else [])
    try:
        config = resolve(args.preset, overrides)
    except ConfigError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(config.to_json())
        return 0
    if args.out is None:
        print("train: error: --out: required unless --dry-run", file=sys.stderr)
        return 2
    if args.max_steps is not None and args.max_steps < 1:
        print("train: error: --max-steps: must be >= 1", file=sys.stderr)
        return 2
    if args.threads is not None:
        if args.threads < 1:
            print("train: error: --threads: must be >= 1", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(args.threads)

    from training import distributed
    from training.trainer import TrainingError, train

    ranks, who = distributed.Ranks(), ""
    try:
        ranks = distributed.from_env()  # under torchrun: which process this is, for the messages
        who = f" ({ranks.label()})" if ranks.distributed else ""
        with distributed.process_group(config.device) as ranks:
            out = train(config, args.out, max_steps=args.max_steps, progress=not args.quiet)
    except (DataError, ConfigError, CheckpointError, TrainingError) as e:
        print(f"train: error{who}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"train: interrupted{who}; rerun the same command to resume from {args.out}'s last checkpoint",
            file=sys.stderr,
        )
        return 130
    if ranks.main:
        print(f"trained {config.preset} to {out}")
    if ranks.distributed:
        # The group is gone and everything written; leave without the interpreter's teardown, where
        # a gloo or store thread destroyed late aborted a finished rank now and then ("terminate
        # called without an active exception", exit -6) and torchrun then failed the whole run.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
