"""Train one preset over several seeds, evaluate each run, and report mean +- standard error.

    python -m training.evaluation.seed_sweep --preset ring8 --seeds 10 --out /tmp/runs/sweep-ring8 \
        [--set key=value ...] [--threads 1]

Each seed trains into OUT/seed-<s>/ (a finished run is only evaluated again, so a sweep that was
stopped resumes where it stopped); OUT/summary.json holds every run's metrics and the aggregate.
The mode-coverage references (PacGAN, Lin et al. 2018, Table 1) are printed beside the result.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

# Published means over their runs: vanilla GAN and PacGAN4 (Lin et al. 2018, 2-D experiments).
REFERENCES = {
    "ring8": {"vanilla GAN": {"modes_covered": 6.3}, "PacGAN4": {"modes_covered": 7.8}},
    "grid25": {"vanilla GAN": {"modes_covered": 17.3}, "PacGAN4": {"modes_covered": 24.8, "high_quality_share": 0.936}},
}


def aggregate(per_seed: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for name in per_seed[0]:
        v = np.array([row[name] for row in per_seed], dtype=np.float64)
        se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
        out[name] = {"mean": float(v.mean()), "stderr": se, "min": float(v.min()), "max": float(v.max())}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="train and evaluate a preset over several seeds")
    parser.add_argument("--preset", required=True)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 suits small nets)")
    parser.add_argument("--max-steps", type=int, default=None)
    args = parser.parse_args(argv)

    import torch

    from training.checkpoint import load_run
    from training.config import ConfigError
    from training.evaluation.run_metrics import evaluate
    from training.evaluation.samplers import run_sampler
    from training.presets import resolve
    from training.trainer import train

    torch.set_num_threads(args.threads)
    rows, runs = [], {}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        try:
            cfg = resolve(args.preset, [*args.overrides, f"seed={seed}"])
        except ConfigError as e:
            print(f"seed_sweep: error: {e}", file=sys.stderr)
            return 2
        run_dir = train(cfg, args.out / f"seed-{seed}", max_steps=args.max_steps)
        run = load_run(run_dir)
        metrics = evaluate(
            cfg.dataset, cfg.dataset_options, run_sampler(run.generator, cfg.network.latent), progress=False
        )
        values = {k: m.value for k, m in metrics.items()}
        rows.append(values)
        runs[str(seed)] = {"run_dir": str(run_dir), "step": run.step, "wall_time_s": run.wall_time_s, **values}
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()), flush=True)
    summary = {
        "preset": args.preset,
        "overrides": args.overrides,
        "seeds": runs,
        "aggregate": aggregate(rows),
        "references": REFERENCES.get(args.preset, {}),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    for name, a in summary["aggregate"].items():
        print(f"{name:22s} {a['mean']:.4g} +- {a['stderr']:.2g}  (min {a['min']:.4g}, max {a['max']:.4g})")
    for ref, vals in summary["references"].items():
        print(f"reference {ref}: {vals}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
