"""Theorem 1: the virtual training criterion C(G) = max_D V(G, D) reaches its global minimum
-log 4 exactly when p_g = p_data, where D*(x) = 1/2 everywhere.

Checked two ways:
- exactly at the optimum: G(z) = mean + std z generates p_data itself; a D trained to convergence
  against it stays at 1/2 and V(G, D) = -log 4 within 0.05 (the quick test);
- along our own toy1d run: at every checkpoint C(G) = -log 4 + 2 JSD(p_data || p_g) (p_g by kernel
  density); at the end a fresh D trained to convergence gives V(G, D) on held-out samples, and
  the run's own D sits near 1/2. Both estimates of C(G) must end within 0.05 of -log 4.

    python -m training.paper.theorem1 [--run /tmp/runs/toy1d-history] [--out docs/figures/theorem1.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from training.data.toy import TOY1D_MEAN, TOY1D_STD
from training.evaluation.density1d import LOG4, criterion_from_jsd
from training.networks import sample_latent
from training.paper.optimal_d import fit_discriminator, fresh_discriminator, probability, value
from training.paper.proposition1 import affine_g, draw_data, support_grid
from training.paper.toy_history import ensure_run, states

TOLERANCE = 0.05
HELD_OUT = 100_000


@dataclass(frozen=True)
class Thm1Result:
    criterion: float  # V(G, D) of a D trained to convergence, on held-out samples
    gap: float  # criterion + log 4
    d_mean_abs_from_half: float  # mean |D(x) - 1/2| over the data's support
    passed: bool


def converged_criterion(draw_fake, *, steps: int = 2000, seed: int = 0) -> Thm1Result:
    """Train a fresh D to convergence against `draw_fake`; measure V and |D - 1/2| on fresh data."""
    D = fresh_discriminator(1, TOY1D_MEAN, 4 * TOY1D_STD, seed=seed)
    fit_discriminator(D, draw_data, draw_fake, steps=steps, seed=seed)
    gen = torch.Generator().manual_seed(seed + 10_000)  # held-out samples, never seen by D
    v = value(D, draw_data(HELD_OUT, gen), draw_fake(HELD_OUT, gen))
    d = probability(D, torch.from_numpy(support_grid()).float()[:, None]).numpy()
    dev = float(np.abs(d - 0.5).mean())
    return Thm1Result(v, v + LOG4, dev, abs(v + LOG4) < TOLERANCE and dev < TOLERANCE)


def check_at_optimum(steps: int = 2000) -> Thm1Result:
    draw, _ = affine_g(TOY1D_MEAN, TOY1D_STD)  # p_g = p_data
    return converged_criterion(draw, steps=steps)


def trajectory(run_dir: Path) -> dict:
    history = states(run_dir)
    grid = support_grid()
    rows = [
        {
            "step": s.step,
            "epoch": s.epoch,
            "criterion_c": criterion_from_jsd(s.jsd()),
            "run_d_mean_abs_from_half": float(np.abs(s.d_prob(grid) - 0.5).mean()),
        }
        for s in history
    ]
    final = history[-1]

    def draw_final(n: int, gen: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            return final.G(sample_latent(final.config.network.latent, n, gen))  # (n, 1)

    fresh = converged_criterion(draw_final)
    last = rows[-1]
    ok = fresh.passed and abs(last["criterion_c"] + LOG4) < TOLERANCE
    return {"checkpoints": rows, "final_fresh_d": asdict(fresh), "passed": ok, "minus_log4": -LOG4}


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["checkpoints"]
    steps = [r["step"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    a.plot(steps, [r["criterion_c"] for r in rows], "o-", ms=3, label="C(G) = -log 4 + 2 JSD (KDE)")
    a.axhline(-LOG4, color="k", ls=":", label="-log 4")
    a.scatter(
        [steps[-1]],
        [result["final_fresh_d"]["criterion"]],
        color="r",
        zorder=3,
        label="V(G, D) with D trained to convergence",
    )
    a.set_xlabel("step")
    a.set_ylabel("nats")
    a.legend(fontsize=8)
    a.set_title("Theorem 1: C(G) -> -log 4")
    b.plot(steps, [r["run_d_mean_abs_from_half"] for r in rows], "o-", ms=3)
    b.set_xlabel("step")
    b.set_ylabel("mean |D(x) - 1/2| over the support")
    b.set_yscale("log")
    b.set_title("the run's D -> 1/2")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="check Theorem 1 at the optimum and along a toy1d run")
    parser.add_argument("--run", type=Path, default=Path("/tmp/runs/toy1d-history"))
    parser.add_argument("--out", type=Path, default=Path("docs/figures/theorem1.png"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny 1-D nets: extra threads only fight over the shared cores
    at_opt = check_at_optimum()
    ensure_run(args.run, args.overrides)
    traj = trajectory(args.run)
    plot(traj, args.out)
    summary = {
        "at_optimum": asdict(at_opt),
        "run_final": traj["checkpoints"][-1],
        "run_final_fresh_d": traj["final_fresh_d"],
        "run_passed": traj["passed"],
        "figure": str(args.out),
    }
    print(json.dumps(summary, indent=2))
    return 0 if at_opt.passed and traj["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
