"""Is a digit model's served D a density ratio class by class? Why `drs` skews mnist's digit mix.

    PYTHONPATH=. python bench/ratio_by_class.py [--model-dir models/mnist] [--n 20000] [--seed 4242]

For the exact ratio r = p_data / p_g, the mean of r over G's samples of one class k is
p_data(k) / p_g(k), whatever G's quality within that class: rejection sampling by the exact ratio
keeps the class mix of the data. This draws n samples of G (onnxruntime), scores them with the
served D (r = exp(logit), scaled to mean 1 over G's samples: D's constant drops out), classifies
them with the project's digit classifier, and prints per digit: the training split's share, G's
share, their ratio (what E[r | k] should be), D's E[r | k], and the digit's share of the 15% of
G's samples that D ranks highest (roughly what a strict `drs` returned by this ratio). An
unconditional model's D only; the classes are the classifier's. D's first output, the realness
logit: where the card keeps the training D's ratio for DRS (`realness.drs_ratio` "training", as
mnist's does), this measures the calibrated D, not what `drs` rejects by.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.card import load_model_folder
from training.data import load_dataset
from training.evaluation.classifier import load_classifier
from training.evaluation.samplers import onnx_sampler
from training.onnx_io import cpu_session, run_batched

TOP_SHARE = 0.15


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, default=Path("models/mnist"))
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=4242)
    args = p.parse_args(argv)
    card, paths = load_model_folder(args.model_dir)
    if card.condition is not None or card.dataset != "mnist5k":
        p.error(
            f"{args.model_dir}: an unconditional mnist5k model is needed (its classes come from the digit classifier)"
        )
    x = onnx_sampler(args.model_dir, card)(args.n, args.seed)
    logit = run_batched(cpu_session(paths["discriminator"]), x).ravel().astype(np.float64)
    _, probs = load_classifier(card.dataset).features_and_probs(x)
    k = probs.argmax(1)
    y = load_dataset(card.dataset, "train").y.numpy()
    r = np.exp(logit - logit.max())
    r /= r.mean()
    top = logit >= np.quantile(logit, 1 - TOP_SHARE)
    print(
        f"{card.name} ({card.realness.discriminator if card.realness else 'training'} D), {args.n} samples of G, seed {args.seed}"
    )
    print(
        f"| digit | data share | G's share | data / G (exact E[r \\| k]) | D's E[r \\| k] | share of D's top {TOP_SHARE:.0%} |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for d in range(probs.shape[1]):
        data, ours = float((y == d).mean()), float((k == d).mean())
        print(
            f"| {d} | {data:.3f} | {ours:.3f} | {data / ours:.2f} | {r[k == d].mean():.2f} | {(k[top] == d).mean():.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
