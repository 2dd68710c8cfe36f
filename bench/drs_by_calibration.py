"""Does calibrating D help or hurt what `drs` returns? The same G, its D calibrated for 0, 40, ... steps.

    PYTHONPATH=. python bench/drs_by_calibration.py FOLDER [--steps 0 40 160 400 1500] [--n 2000]
        [--seeds 100-104] [--target 0.85]

FOLDER holds a model whose D is the one trained with G (`realness.discriminator` "training"), as
export writes it. Each step count runs `training.calibrate` from that D into a temporary folder
(Adam lr 1e-4, batch 100, early stopping on the held-out loss every min(100, steps) steps with
patience 4, then the Platt fit: the shipped recipe of docs/RESULTS.md section 6, cut at the given
number of steps); 0 is the training D itself, unchanged. Every D then filters the same requests
through the service's own sampling code (bench/filters.py): drs with the gamma that keeps the target
share of G's samples (never stricter than exact DRS, as calibrate chooses it) and exact drs
(gamma 0), measured with the dataset's metrics (Frechet distance and digit shares for digits).
Prints one markdown table, the first row without a filter.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from filters import _draw, _Measure

from models.card import load_model_folder
from service.core.sampling import Filter
from service.runtime.engine import Engine
from training.calibrate import CalibrationConfig, calibrate_model
from training.calibration_sets import REALNESS_SAMPLES, REALNESS_SEED
from training.evaluation import calibration as cal
from training.evaluation.samplers import onnx_sampler
from training.onnx_io import cpu_session, run_batched


def _calibrated(folder: Path, steps: int, target: float, scratch: Path) -> tuple[Path, float, float]:
    """(the model folder with D calibrated for `steps`, D's held-out AUC before and after); 0 steps:
    `folder` itself, its AUCs unknown until a calibration measures them."""
    if steps == 0:
        return folder, float("nan"), float("nan")
    out = scratch / f"steps{steps}" / folder.name
    out.parent.mkdir(parents=True)
    cfg = CalibrationConfig(
        steps=steps, batch=100, lr=1e-4, eval_every=min(100, steps), patience=4, target_acceptance=target
    )
    report = calibrate_model(folder, cfg, out=out, progress=False)
    return out, report.before["auc"], report.after["auc"]


def _gamma_for(folder: Path, target: float) -> float:
    """The gamma calibrate would record: exact DRS unless it keeps under `target` of G's samples."""
    card, paths = load_model_folder(folder)
    logits = run_batched(
        cpu_session(paths["discriminator"]), onnx_sampler(folder, card)(REALNESS_SAMPLES, REALNESS_SEED)
    ).ravel()
    return cal.recommended_gamma(logits, card.realness.max_logit, target)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--steps", type=int, nargs="+", default=[0, 40, 160, 400, 1500])
    p.add_argument("--n", type=int, default=2000, help="samples asked for per seed")
    p.add_argument("--seeds", default="100-104", help="a range a-b of seeds, one request each")
    p.add_argument("--target", type=float, default=0.85, help="the share of G's samples drs keeps")
    args = p.parse_args(argv)
    card, _ = load_model_folder(args.folder)
    if card.realness is None or card.realness.discriminator != "training":
        p.error(f"{args.folder}: its D must be the one trained with G (realness.discriminator 'training')")
    a, _, b = args.seeds.partition("-")
    seeds = list(range(int(a), int(b or a) + 1))
    measure = _Measure(card, parzen=False)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for steps in args.steps:
            folder, before, auc = _calibrated(args.folder, steps, args.target, Path(scratch))
            for r in rows:  # the training D's AUC, as the first calibration measured it
                if r["calibration steps"] == "0" and not r["held-out AUC"] and not np.isnan(before):
                    r["held-out AUC"] = f"{before:.3f}"
            model = Engine.from_folder(folder, device="cpu").get(folder.name)
            gamma = _gamma_for(folder, args.target)
            filters = [("none", Filter())] if not rows else []
            filters += [
                (f"drs, gamma {gamma:.2f} (keeps {args.target:.0%})", Filter(drs=True, gamma=gamma)),
                ("drs, gamma 0 (exact)", Filter(drs=True, gamma=0.0)),
            ]
            for label, keep in filters:
                x, _, drawn, exhausted, _ = _draw(model, keep, args.n, seeds)
                rows.append(
                    {
                        "calibration steps": "-" if label == "none" else str(steps),
                        "held-out AUC": "" if label == "none" or np.isnan(auc) else f"{auc:.3f}",
                        "filter": label,
                        "returned": f"{len(x)} of {args.n * len(seeds)}",
                        "returned / drawn": f"{len(x) / drawn:.3f}",
                        **measure(x),
                    }
                )
                print(rows[-1], file=sys.stderr, flush=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
