"""What each filter of POST /sample does to what users receive, per shipped model.

    PYTHONPATH=. python bench/filters.py [--models-dir models] [--n 2000] [--seeds 100-104] [--parzen]
        [--markdown] [--figure docs/figures/filters.png] [--calibration-figure docs/figures/calibration.png]

Each row draws n samples per seed through the service's own sampling code (service/core/sampling.py
`from_seed`, with the draw bound of the default settings, n x 20) on a CPU engine, exactly what
/sample answers minus the HTTP, and measures what came back with the project's evaluation code:
mode coverage, high-quality share and reverse KL (ring8, grid25; training/evaluation/modes.py),
Frechet distance, classifier confidence and digit shares (mnist; frechet.py, classifier.py),
Parzen log-likelihood with --parzen (slow), JSD (toy1d). `returned / drawn` is a lower bound on
the acceptance rate (the first round draws 2n, later rounds 1.25 x what is missing at the rate
seen so far, so above a rate of 1/2 it reads 0.5); `exhausted` counts the seeds whose draw bound ran out before n passed.

A conditional model (mnist-cond) is asked for `labels` "balanced" (the classes in turn, resolved by
the service's own service/core/labels.py), so every candidate is judged by D(x | its class) as /sample
does, and gains two columns: label agreement (the share of returned samples that the project's
classifier puts in the class asked for; for a mixture, whose nearest mode is that mode) and, for
digits, the per-class Frechet distance (each class's returned samples against the held-out real
digits of that class, valid + test, ~100 each; averaged over the classes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

MAX_DRAWS_FACTOR = 20  # service/settings.py's default
THRESHOLDS = (0.5, 0.8, 0.9)


def _filters(card) -> list[tuple[str, object]]:
    from service.core.sampling import Filter

    rows = [("none", Filter())]
    gamma = card.realness.drs_gamma
    by = ", by the training D's ratio" if card.realness.drs_ratio == "training" else ""  # Realness.drs_ratio
    rows.append((f"drs (card gamma {gamma:.2f}{by})" if gamma is not None else f"drs (gamma 0{by})", Filter(drs=True)))
    if gamma is not None and gamma != 0.0:
        rows.append(("drs (gamma 0)", Filter(drs=True, gamma=0.0)))
    rows += [(f"min_realness {t}", Filter(min_realness=t)) for t in THRESHOLDS]
    return rows


def _draw(model, keep, n: int, seeds: list[int]) -> tuple[np.ndarray, np.ndarray, int, int, np.ndarray | None]:
    """(samples, logits, drawn, exhausted seeds, classes of the samples or None) over the seeds."""
    from service.core import labels, sampling

    xs, ls, cs, drawn, exhausted = [], [], [], 0, 0
    for seed in seeds:
        c = labels.resolve(model, labels.BALANCED, n, seed).classes if model.conditional else None
        b = sampling.from_seed(model, n, seed, None, True, keep, n * MAX_DRAWS_FACTOR, c)
        xs.append(b.samples)
        ls.append(b.logits)
        cs.append(b.labels)
        drawn += b.drawn
        exhausted += int(b.exhausted)
    return np.concatenate(xs), np.concatenate(ls), drawn, exhausted, np.concatenate(cs) if model.conditional else None


class _Measure:
    """The dataset's metrics on a set of returned samples (everything loaded once per model)."""

    def __init__(self, card, parzen: bool):
        from training.data import load_dataset

        self.dataset, self.parzen = card.dataset, parzen
        options = card.training.config.get("dataset_options", {})
        split = lambda s: load_dataset(self.dataset, s, **options).x.numpy()
        if self.dataset in ("ring8", "grid25"):
            from training.data.toy import mixture_modes, mixture_sigma

            self.modes, self.sigma = mixture_modes(self.dataset), mixture_sigma(self.dataset)
        elif self.dataset in ("mnist5k", "mnist", "digits"):
            from training.evaluation.classifier import load_classifier
            from training.evaluation.run_metrics import CLASSIFIER_FOR

            self.clf = load_classifier(CLASSIFIER_FOR[self.dataset])
            self.valid, self.test = split("valid"), split("test")
            self.real = np.concatenate([self.valid, self.test])
            if card.condition is not None:  # the held-out real digits' labels, for the per-class Frechet
                self.real_y = np.concatenate(
                    [load_dataset(self.dataset, s, **options).y.numpy() for s in ("valid", "test")]
                )
        elif card.sample.kind == "image" and card.sample.shape[0] == 3:  # RGB (patches): SWD, as evaluate measures it
            self.real = np.concatenate([split("valid"), split("test")])

    def __call__(self, x: np.ndarray, c: np.ndarray | None = None) -> dict:
        """The metrics of returned samples x; `c`: a conditional model's classes asked for, (len(x),)."""
        if len(x) < 2:
            return {}
        if self.dataset in ("ring8", "grid25"):
            from training.evaluation.modes import mode_coverage

            r = mode_coverage(x.reshape(len(x), -1), self.modes, self.sigma)
            out = {
                "modes": f"{r.modes_covered}/{r.n_modes}",
                "high quality": f"{100 * r.high_quality:.1f}%",
                "reverse KL": f"{r.reverse_kl:.3f}",
                "modes >= 20% share": f"{r.modes_covered_at_20pct}/{r.n_modes}",
            }
            if c is not None:  # a sample of mode c is right when mode c is its nearest
                nearest = np.linalg.norm(x.reshape(len(x), 1, -1) - self.modes[None], axis=2).argmin(axis=1)
                out["label agreement"] = f"{(nearest == c).mean():.3f}"
            return out
        if self.dataset == "toy1d":
            from training.data.toy import TOY1D_MEAN, TOY1D_STD, toy1d_density
            from training.evaluation import density1d

            grid = np.linspace(TOY1D_MEAN - 8 * TOY1D_STD, TOY1D_MEAN + 8 * TOY1D_STD, 4001)
            j = density1d.jsd(toy1d_density(grid), density1d.kde(x.reshape(-1), grid), float(grid[1] - grid[0]))
            return {"JSD (nats)": f"{j:.5f}", "mean": f"{x.mean():.3f}", "std": f"{x.std():.3f}"}
        if not hasattr(self, "clf"):  # RGB: SWD x 1e3 against as many held-out real images (equal sets)
            from training.evaluation.swd import swd

            k = min(len(x), len(self.real))
            real = self.real[np.random.default_rng(0).permutation(len(self.real))[:k]]
            r = swd(x[:k], real)
            return {
                "SWD x 1e3": f"{r.mean:.1f}",
                "levels": " ".join(f"{r.levels[lv]:.1f}" for lv in sorted(r.levels, reverse=True)),
                "compared": f"{k}",
            }
        from training.evaluation.frechet import digit_metrics

        m = digit_metrics(self.clf, x, self.real)
        out = {
            "Frechet": f"{m.frechet:.2f}",
            "confidence": f"{m.confidence:.3f}",
            "smallest digit share": f"{m.min_share:.3f}",
            "digit shares": " ".join(f"{s:.2f}" for s in m.class_shares),
        }
        if c is not None:
            from training.evaluation import conditional as cond

            out["label agreement"] = f"{cond.label_agreement(self.clf, x, c).overall:.3f}"
            fd = cond.per_class_frechet(self.clf, x, c, self.real, self.real_y)
            out["per-class Frechet, mean"] = f"{np.nanmean(fd):.1f}"
        if self.parzen:
            from training.evaluation.parzen import parzen_estimate

            p = parzen_estimate(x[:10_000], self.valid, self.test, progress=False)
            out["Parzen (nats)"] = f"{p.mean:.0f} +- {p.stderr:.0f}"
        return out


def table(folder: Path, n: int, seeds: list[int], parzen: bool) -> list[dict]:
    from service.runtime.engine import Engine

    model = Engine.from_folder(folder, device="cpu").get(folder.name)
    measure = _Measure(model.card, parzen)
    rows = []
    for label, keep in _filters(model.card):
        x, _, drawn, exhausted, c = _draw(model, keep, n, seeds)
        rows.append(
            {
                "model": folder.name,
                "filter": label,
                "returned": f"{len(x)} of {n * len(seeds)}",
                "returned / drawn": f"{len(x) / drawn:.3f}",
                "exhausted": f"{exhausted}/{len(seeds)}",
                **measure(x, c),
            }
        )
    return rows


def _print(rows: list[dict], markdown: bool) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    if markdown:
        print("| " + " | ".join(keys) + " |")
        print("|" + "---|" * len(keys))
        for r in rows:
            print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
        return
    widths = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(str(r.get(k, "")).ljust(widths[k]) for k in keys))


def figure(models_dir: Path, out: Path, n: int, seed: int) -> None:
    """ring8 and grid25: n samples without a filter and with drs, coloured by realness."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from service.core import sampling
    from service.runtime.engine import Engine
    from training.data.toy import mixture_modes

    names = [m for m in ("ring8", "grid25") if (models_dir / m).is_dir()]
    fig, axes = plt.subplots(len(names), 2, figsize=(10, 4.6 * len(names)), squeeze=False, layout="constrained")
    for row, name in zip(axes, names):
        model = Engine.from_folder(models_dir / name, device="cpu").get(name)
        for ax, (label, keep) in zip(
            row, (("none", sampling.Filter()), ("drs (card gamma)", sampling.Filter(drs=True)))
        ):
            b = sampling.from_seed(model, n, seed, None, True, keep, n * MAX_DRAWS_FACTOR)
            sc = ax.scatter(
                b.samples[:, 0], b.samples[:, 1], c=sampling.realness(b.logits), s=2, cmap="viridis", vmin=0, vmax=1
            )
            m = mixture_modes(name)
            ax.scatter(m[:, 0], m[:, 1], marker="x", c="red", s=30, linewidths=1)
            ax.set_title(f"{name}, {label}\n{len(b.samples)} of {n} returned, {b.drawn} drawn", fontsize=9)
            ax.set_aspect("equal")
        fig.colorbar(sc, ax=row.tolist(), label="realness D(x)")
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


def calibration_figure(models_dir: Path, names: list[str], out: Path) -> None:
    """From the cards alone: each calibrated D's reliability curve on its balanced held-out set, and
    its realness quantiles (5-25-50-75-95) on held-out real data, G's samples and noise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.card import read_card

    cards = [read_card(models_dir / n) for n in names if (models_dir / n).is_dir()]
    cards = [c for c in cards if c.realness.calibration is not None]
    fig, axes = plt.subplots(2, len(cards), figsize=(3.6 * len(cards), 7), squeeze=False)
    for col, card in enumerate(cards):
        c = card.realness.calibration
        ax = axes[0][col]
        pts = [(b.mean_realness, b.share_real, b.count) for b in c.reliability if b.count]
        ax.plot([0, 1], [0, 1], ":", c="gray")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-")
        ax.set_title(
            f"{card.name}: AUC {c.before.get('auc', float('nan')):.2f} -> {c.auc:.2f}\nECE {c.ece:.3f}", fontsize=9
        )
        ax.set_xlabel("mean realness in bin")
        ax.set_ylabel("share real")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax = axes[1][col]
        for i, (what, colour) in enumerate((("real", "tab:green"), ("generated", "tab:blue"), ("noise", "tab:red"))):
            q = c.distributions[what].quantiles
            ax.plot([i, i], [q["p05"], q["p95"]], c=colour)
            ax.add_patch(plt.Rectangle((i - 0.2, q["p25"]), 0.4, q["p75"] - q["p25"], color=colour, alpha=0.5))
            ax.plot([i - 0.2, i + 0.2], [q["p50"]] * 2, c="black")
        ax.set_xticks([0, 1, 2], ["real", "G", "noise"])
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("realness (held out)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    p.add_argument("--models", default="ring8,grid25,mnist,toy1d,mnist-cond", help="comma-separated model folder names")
    p.add_argument("--n", type=int, default=2000, help="samples asked for per seed")
    p.add_argument("--seeds", default="100-104", help="a range a-b of seeds, one request each")
    p.add_argument("--parzen", action="store_true", help="add the Parzen estimate on image models (slow)")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--no-table", action="store_true", help="only the figures")
    p.add_argument("--figure", type=Path, default=None, help="also draw ring8 and grid25 before/after drs here")
    p.add_argument(
        "--calibration-figure",
        type=Path,
        default=None,
        help="also draw each calibrated D's reliability curve and realness quantiles (from the cards)",
    )
    args = p.parse_args(argv)
    a, _, b = args.seeds.partition("-")
    seeds = list(range(int(a), int(b or a) + 1))
    for name in [] if args.no_table else args.models.split(","):
        if (args.models_dir / name).is_dir():  # one table per model: the metrics differ by dataset
            _print(table(args.models_dir / name, args.n, seeds, args.parzen), args.markdown)
            print(flush=True)
    if args.figure:
        figure(args.models_dir, args.figure, args.n, seeds[0])
    if args.calibration_figure:
        calibration_figure(args.models_dir, args.models.split(","), args.calibration_figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
