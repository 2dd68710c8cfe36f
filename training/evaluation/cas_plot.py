"""The classification accuracy score against the synthetic set's size, with the real-data line.

    python -m training.evaluation.cas_plot models/mnist-cond docs/figures/cas.png

Reads the `cas_<N>` metrics that `python -m training evaluate` recorded (a model folder's card, or
a run's metrics.json) and draws accuracy on the real test split against N, beside the accuracy of
the same classifier trained on the real training split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cas_points(path: Path) -> tuple[list[tuple[int, float]], float, str]:
    """([(synthetic set size, accuracy)], real-data accuracy, what was measured) from a folder."""
    card = path / "model.json"
    data = json.loads((card if card.is_file() else path / "metrics.json").read_text(encoding="utf-8"))
    metrics = data["metrics"]
    points = sorted(
        (int(m["details"]["synthetic_samples"]), float(m["value"])) for k, m in metrics.items() if k.startswith("cas_")
    )
    if not points:
        raise ValueError(f"{path}: no cas_<N> metrics; run `python -m training evaluate {path}` first")
    real = next(float(m["details"]["real_data_accuracy"]) for k, m in metrics.items() if k.startswith("cas_"))
    return points, real, data.get("name", path.name)


def plot(path: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points, real, name = cas_points(path)
    sizes, accs = zip(*points)
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=100)
    ax.plot(sizes, accs, "o-", label=f"trained on {name}'s samples only (CAS)")
    ax.axhline(real, color="k", ls="--", label=f"trained on the real 4,000 training digits ({real:.3f})")
    ax.axhline(0.95 * real, color="gray", ls=":", label="95% of the real-data accuracy")
    ax.set_xscale("log")
    ax.set_xlabel("synthetic training samples (balanced classes)")
    ax.set_ylabel("accuracy on the real test split")
    ax.set_ylim(min(min(accs), 0.9 * real) - 0.02, 1.03)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("Classification accuracy score (Ravuri & Vinyals 2019)", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", type=Path, help="a model folder or a run folder with cas_<N> metrics")
    p.add_argument("out", type=Path, help="the PNG to write")
    args = p.parse_args(argv)
    try:
        print(plot(args.path, args.out))
    except (OSError, ValueError, KeyError) as e:
        print(f"cas_plot: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
