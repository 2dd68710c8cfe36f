"""Figure 1 of the paper, redrawn from our own toy1d run.

Each panel shows the data density p_data (black, dotted), the generator's density p_g (green,
solid, a kernel density of G's samples) and the discriminator D(x) (blue, dashed); below, the
lines from the z domain (evenly spaced quantiles of the latent) to x = G(z) show how G maps them.

(a) an early checkpoint: p_g near p_data, D a partially accurate classifier;
(b) the same G, D trained to convergence against it: D -> D* = p_data / (p_data + p_g);
(c) G after a few updates against that D: the gradient of D moved G(z) toward the data;
(d) the end of training: p_g ~ p_data and D ~ 1/2 everywhere.

    python -m training.paper.figure1 [--run /tmp/runs/toy1d-history] [--out docs/figures/figure1.png]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

from training.data.toy import TOY1D_MEAN, TOY1D_STD, toy1d_density
from training.evaluation.density1d import kde, optimal_discriminator
from training.losses import g_loss_non_saturating
from training.networks import sample_latent
from training.paper.optimal_d import fit_discriminator
from training.paper.proposition1 import draw_data
from training.paper.toy_history import State, ensure_run, states

DEFAULT_RUN = Path("/tmp/runs/toy1d-history")
DEFAULT_OUT = Path("docs/figures/figure1.png")
X = np.linspace(TOY1D_MEAN - 4 * TOY1D_STD, TOY1D_MEAN + 4 * TOY1D_STD, 801)
G_STEPS_C = 8  # G updates between panels (b) and (c): a few, or G overshoots past the data
# Panel (a): the first checkpoint whose p_g is already close but still visibly off (JSD in nats).
A_MAX_JSD = 0.15


def _pick_early(history: list[State]) -> State:
    for s in history:
        if s.jsd() < A_MAX_JSD:
            return s
    return history[0]


def _g_steps(state: State, D: torch.nn.Module, steps: int, seed: int = 0) -> torch.nn.Module:
    """G after `steps` non-saturating updates against a fixed D (D's parameters are not touched)."""
    G = copy.deepcopy(state.G).train()
    opt = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed)
    for p in D.parameters():
        p.requires_grad_(False)
    for _ in range(steps):
        z = sample_latent(state.config.network.latent, 256, gen)  # (256, z_dim)
        loss = g_loss_non_saturating(D(G(z)))  # G: maximize log D(G(z))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return G.eval()


def _panel(ax, G: torch.nn.Module, latent_cfg, d: np.ndarray, title: str) -> None:
    with torch.no_grad():
        samples = G(sample_latent(latent_cfg, 50_000, torch.Generator().manual_seed(7))).numpy().reshape(-1)
    # The arrows join evenly spaced quantiles u of z (drawn evenly, as the paper draws z
    # uniformly) to the same quantiles of x = G(z): for a monotone 1-D map that is exactly where
    # G sends them, and for a multi-dimensional z it is the map's 1-D summary (the transport).
    u = (np.arange(15) + 0.5) / 15
    xz = np.quantile(samples, u)  # (15,)
    p_data, p_g = toy1d_density(X), kde(samples, X)
    top = max(1.8 * p_data.max(), 1.05 * p_g.max())  # the same scale in every panel where p_g allows
    ax.plot(X, p_data / top, "k:", lw=1.5, label="p_data")
    ax.plot(X, p_g / top, "g-", lw=1.5, label="p_g")
    ax.plot(X, d, "b--", lw=1.5, label="D(x)")
    z_pos = X[0] + (X[-1] - X[0]) * u  # the z line, drawn under the x axis
    for zp, xp in zip(z_pos, xz):
        ax.annotate("", xy=(xp, -0.05), xytext=(zp, -0.35), arrowprops=dict(arrowstyle="->", lw=0.6, color="0.3"))
    ax.axhline(-0.05, color="k", lw=0.8)
    ax.axhline(-0.35, color="k", lw=0.8)
    ax.text(X[0], -0.03, "x", fontsize=9)
    ax.text(X[0], -0.33, "z", fontsize=9)
    ax.set_ylim(-0.4, 1.08)
    ax.set_xlim(X[0], X[-1])
    ax.set_yticks([0, 0.5, 1])
    ax.set_title(title, fontsize=10)


def render(run_dir: Path, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = states(run_dir)
    a, final = _pick_early(history), history[-1]
    latent = a.config.network.latent
    grid = torch.from_numpy(X).float()[:, None]
    d_b = fit_discriminator(
        copy.deepcopy(a.D), draw_data, lambda n, gen: a.G(sample_latent(latent, n, gen)).detach(), steps=1500, seed=0
    )
    with torch.no_grad():
        d_b_prob = torch.sigmoid(d_b(grid)).numpy().reshape(-1)
    g_c = _g_steps(a, d_b, G_STEPS_C)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    _panel(axes[0], a.G, latent, a.d_prob(X), f"(a) step {a.step}: D partially accurate")
    _panel(axes[1], a.G, latent, d_b_prob, "(b) D trained to convergence: D*")
    p_data_x, p_g_x = toy1d_density(X), a.p_g(X)
    d_star = optimal_discriminator(p_data_x, p_g_x)
    # Where both densities vanish the ratio is noise of the kernel density: not drawn there.
    axes[1].plot(
        X, np.where(p_data_x + p_g_x > 1e-3, d_star, np.nan), color="tab:orange", lw=0.8, label="p_data/(p_data+p_g)"
    )
    _panel(axes[2], g_c, latent, d_b_prob, f"(c) after {G_STEPS_C} G updates against D*")
    _panel(axes[3], final.G, latent, final.d_prob(X), f"(d) step {final.step}: p_g = p_data, D = 1/2")
    handles = [h for ax in axes[:2] for h in ax.get_legend_handles_labels()[0]]
    labels = [lbl for ax in axes[:2] for lbl in ax.get_legend_handles_labels()[1]]
    seen = dict(zip(labels, handles))
    fig.legend(seen.values(), seen.keys(), loc="lower center", ncol=4, frameon=False)
    fig.suptitle(f"Figure 1 of Goodfellow et al. (2014), from our toy1d run ({run_dir.name})", fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return {
        "panel_a_step": a.step,
        "panel_a_jsd": a.jsd(),
        "panel_d_step": final.step,
        "panel_d_jsd": final.jsd(),
        "panel_b_mae_vs_dstar": float(np.nanmean(np.abs(d_b_prob - d_star)[p_data_x + p_g_x > 1e-3])),
        "out": str(out),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="render the paper's Figure 1 from a toy1d run")
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN, help="the toy1d run (trained here if missing)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for the toy1d run, if it is trained here",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny 1-D nets: extra threads only fight over the shared cores
    ensure_run(args.run, args.overrides)
    print(json.dumps(render(args.run, args.out), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
