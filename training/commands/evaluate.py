"""`python -m training evaluate PATH [--samples N] [--no-record]`

PATH is a training run (its latest checkpoint is sampled with torch) or an exported model folder
(its generator.onnx is sampled with onnxruntime). The metrics that fit the dataset are printed and
recorded with how they were measured: into the folder's model.json (a model folder, written
atomically through models.card.write_card) or into metrics.json (a run folder).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RUN_METRICS_FILE = "metrics.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, metavar="PATH", help="a training run directory or an exported model folder")
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        metavar="N",
        help="samples drawn from G for every metric (default: each metric's own protocol)",
    )
    parser.add_argument("--no-record", action="store_true", help="print the metrics only; write nothing")
    parser.add_argument(
        "--cas-sizes",
        default="4000,40000",
        metavar="N,N",
        help="a conditional digit model's classification accuracy score: the sizes of the "
        "synthetic training sets, comma-separated; 'none' skips it (default: 4000,40000)",
    )


def _format(name: str, m) -> str:
    err = f" +- {m.stderr:.4g}" if m.stderr is not None else ""
    return f"{name:40s} {m.value:.6g}{err}"


def _measure(path: Path, n: int | None, cas_sizes: tuple[int, ...] = ()):
    """(dataset, metrics, record) where record(metrics) writes them next to the source."""
    from models.card import CARD_FILE, ModelCard, load_model_folder, write_card
    from training.evaluation.run_metrics import evaluate
    from training.evaluation.samplers import onnx_sampler, run_sampler

    if (path / CARD_FILE).is_file():
        card, _ = load_model_folder(path)
        options = card.training.config.get("dataset_options", {})
        metrics = evaluate(card.dataset, options, onnx_sampler(path, card), n, cas_sizes=cas_sizes)

        def record(ms) -> Path:
            fresh = load_model_folder(path)[0]  # the card as it is now, in case it changed meanwhile
            data = fresh.model_dump(mode="json")
            data["metrics"] = {**data["metrics"], **{k: v.model_dump(mode="json") for k, v in ms.items()}}
            return write_card(path, ModelCard.model_validate(data))

        return card.dataset, metrics, record

    from training.checkpoint import load_run

    run = load_run(path)
    cfg = run.config
    sampler = run_sampler(run.generator, cfg.network.latent, cfg.network.classes)
    metrics = evaluate(cfg.dataset, cfg.dataset_options, sampler, n, cas_sizes=cas_sizes)

    def record(ms) -> Path:
        out = path / RUN_METRICS_FILE
        payload = {
            "step": run.step,
            "epoch": run.epoch,
            "metrics": {k: v.model_dump(mode="json") for k, v in ms.items()},
        }
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        tmp.replace(out)
        return out

    return cfg.dataset, metrics, record


def _cas_sizes(text: str) -> tuple[int, ...]:
    if text.strip().lower() == "none":
        return ()
    sizes = tuple(int(v) for v in text.split(","))
    if any(s < 10 for s in sizes):
        raise ValueError(text)
    return sizes


def run(args: argparse.Namespace) -> int:
    from models.card import CardError
    from training.checkpoint import CheckpointError
    from training.data import DataError

    if args.samples is not None and args.samples < 2:
        print("evaluate: error: --samples: must be >= 2", file=sys.stderr)
        return 2
    try:
        cas_sizes = _cas_sizes(args.cas_sizes)
    except ValueError:
        print(
            f"evaluate: error: --cas-sizes: {args.cas_sizes!r} is not 'none' or sizes >= 10 like 4000,40000",
            file=sys.stderr,
        )
        return 2
    if not args.path.is_dir():
        print(f"evaluate: error: {args.path}: not a run directory or model folder", file=sys.stderr)
        return 2
    try:
        dataset, metrics, record = _measure(args.path, args.samples, cas_sizes)
    except (CardError, CheckpointError, DataError, FileNotFoundError, ValueError) as e:
        print(f"evaluate: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.path} ({dataset})")
    for name, m in metrics.items():
        print("  " + _format(name, m))
    if not args.no_record:
        print(f"recorded in {record(metrics)}")
    return 0
