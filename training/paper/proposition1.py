"""Proposition 1: for G fixed, the optimal discriminator is D*_G(x) = p_data(x) / (p_data(x) + p_g(x)).

We fix a G, train a fresh D to convergence against it (training/paper/optimal_d.py) and compare
D(x) with D*_G(x) on an even grid over the data's support (mean +- 3 std of toy1d). The claim
holds when the mean absolute error is below 0.05. p_g is in closed form for the affine G used in
the tests, and a kernel density of G's samples for a trained G.

    python -m training.paper.proposition1 [RUN_DIR [--step N]]   # a toy1d run's G; default: an affine G
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch

from training.data.toy import TOY1D_MEAN, TOY1D_STD, toy1d_density
from training.evaluation.density1d import kde, optimal_discriminator
from training.paper.optimal_d import fit_discriminator, fresh_discriminator, probability

THRESHOLD = 0.05
# A fixed G whose p_g overlaps p_data but differs in location and scale: N(mean + std, (1.4 std)^2).
SHIFTED_G = (TOY1D_MEAN + TOY1D_STD, 1.4 * TOY1D_STD)


@dataclass(frozen=True)
class Prop1Result:
    mae: float  # mean |D - D*| over an even grid of the data's support
    max_error: float
    mae_under_data: float  # the same, weighted by p_data
    steps: int
    passed: bool


def support_grid(n: int = 601) -> np.ndarray:
    return np.linspace(TOY1D_MEAN - 3 * TOY1D_STD, TOY1D_MEAN + 3 * TOY1D_STD, n)


def draw_data(n: int, gen: torch.Generator) -> torch.Tensor:
    return TOY1D_MEAN + TOY1D_STD * torch.randn(n, 1, generator=gen)  # (n, 1)


def affine_g(shift: float, scale: float) -> tuple[Callable, Callable[[np.ndarray], np.ndarray]]:
    """G(z) = shift + scale z, z ~ N(0, 1): its sampler and its closed-form density."""

    def draw(n: int, gen: torch.Generator) -> torch.Tensor:
        return shift + scale * torch.randn(n, 1, generator=gen)  # (n, 1)

    def density(x: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * ((x - shift) / scale) ** 2) / (scale * math.sqrt(2 * math.pi))

    return draw, density


def check(
    draw_fake: Callable,
    p_g: Callable[[np.ndarray], np.ndarray],
    *,
    steps: int = 2000,
    seed: int = 0,
    progress: bool = False,
) -> Prop1Result:
    D = fresh_discriminator(1, TOY1D_MEAN, 4 * TOY1D_STD, seed=seed)
    fit_discriminator(D, draw_data, draw_fake, steps=steps, seed=seed, progress=progress)
    grid = support_grid()
    p_data = toy1d_density(grid)
    d_star = optimal_discriminator(p_data, p_g(grid))
    d = probability(D, torch.from_numpy(grid).float()[:, None]).numpy()
    err = np.abs(d - d_star)
    mae = float(err.mean())
    return Prop1Result(mae, float(err.max()), float((err * p_data).sum() / p_data.sum()), steps, mae < THRESHOLD)


def generator_sampler(G: torch.nn.Module, latent_cfg) -> tuple[Callable, Callable[[np.ndarray], np.ndarray]]:
    """A trained G's sampler, and p_g by kernel density of 200,000 of its samples."""
    from training.networks import sample_latent

    def draw(n: int, gen: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            return G(sample_latent(latent_cfg, n, gen))  # (n, 1)

    samples = draw(200_000, torch.Generator().manual_seed(99)).numpy().reshape(-1)
    return draw, lambda x: kde(samples, x)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", help="a toy1d training run (default: an affine G, SHIFTED_G)")
    parser.add_argument(
        "--step",
        type=int,
        default=None,
        help="use the run's first checkpoint at or after this step (default: its latest)",
    )
    parser.add_argument("--steps", type=int, default=3000, help="D's training steps")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny 1-D nets: extra threads only fight over the shared cores
    if args.run_dir:
        from training.paper.toy_history import states

        history = states(args.run_dir)
        if history[0].config.dataset != "toy1d":
            print(
                f"proposition1: error: {args.run_dir}: a {history[0].config.dataset} run; need toy1d", file=sys.stderr
            )
            return 2
        chosen = [s for s in history if args.step is None or s.step >= args.step]
        state = chosen[0] if args.step is not None and chosen else history[-1]
        draw, p_g = generator_sampler(state.G, state.config.network.latent)
        what = f"G of {args.run_dir} (step {state.step})"
    else:
        draw, p_g = affine_g(*SHIFTED_G)
        what = f"G(z) = {SHIFTED_G[0]:g} + {SHIFTED_G[1]:g} z"
    r = check(draw, p_g, steps=args.steps, progress=True)
    print(json.dumps({"generator": what, **asdict(r), "threshold": THRESHOLD}, indent=2))
    return 0 if r.passed else 1


if __name__ == "__main__":
    sys.exit(main())
