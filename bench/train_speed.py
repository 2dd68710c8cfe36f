"""Training speed of the `mnist-paper` preset on this machine, next to a plain hand-written PyTorch
loop of the same networks, batch size and optimiser: images/s of each and the ratio.

    .venv/bin/python bench/train_speed.py [--steps 200] [--threads N]

"Images" are the real images D sees (batch x k per step). The trainer's time is its own
`wall_time_s` (the steps only; per-epoch grids and checkpoints are excluded), read from a run's
checkpoint after a warm-up, so both sides time the same thing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

import torch
import torch.nn.functional as F
from tqdm import tqdm

from training.checkpoint import load_run
from training.data import load_dataset
from training.networks import build_discriminator, build_generator, sample_latent
from training.presets import resolve
from training.trainer import train

WARMUP = 20


def trainer_images_per_s(steps: int, run_dir: Path, done: int) -> float:
    """Continue the run in run_dir from step `done` for `steps` more; its own clock times them."""
    config = resolve("mnist-paper")
    before = load_run(run_dir).wall_time_s if done else 0.0
    if not done:  # warm-up
        train(config, run_dir, max_steps=WARMUP, progress=False)
        before, done = load_run(run_dir).wall_time_s, WARMUP
    # wall_time_s counts the steps only, not per-epoch grids and checkpoints.
    train(config, run_dir, max_steps=done + steps, progress=True)
    seconds = load_run(run_dir).wall_time_s - before
    return steps * config.batch_size * config.d_steps / seconds


def make_plain_loop():
    """The loop a person writes by hand: same networks, SGD with momentum, non-saturating G loss."""
    config = resolve("mnist-paper")
    m, z_cfg = config.batch_size, config.network.latent
    data = load_dataset("mnist5k", "train").x  # (4000, 1, 28, 28)
    G, D = build_generator(config.network), build_discriminator(config.network)
    opt_d = torch.optim.SGD(D.parameters(), lr=0.1, momentum=0.5)
    opt_g = torch.optim.SGD(G.parameters(), lr=0.1, momentum=0.5)
    ones, zeros = torch.ones(m, 1), torch.zeros(m, 1)

    def step() -> None:
        x = data[torch.randint(0, len(data), (m,))]
        fake = G(sample_latent(z_cfg, m)).detach()
        loss_d = F.binary_cross_entropy_with_logits(D(x), ones) + F.binary_cross_entropy_with_logits(D(fake), zeros)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(D(G(sample_latent(z_cfg, m))), ones)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    for _ in range(WARMUP):
        step()

    def images_per_s(steps: int) -> float:
        t0 = time.perf_counter()
        for _ in tqdm(range(steps), desc="plain loop", unit="step"):
            step()
        return steps * m / (time.perf_counter() - t0)

    return images_per_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="interleaved rounds; the best of each side counts (shared machines drift)",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    plain_loop = make_plain_loop()
    ours, plain = 0.0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            done = 0 if r == 0 else WARMUP + r * args.steps
            ours = max(ours, trainer_images_per_s(args.steps, Path(tmp) / "run", done))
            plain = max(plain, plain_loop(args.steps))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), mnist-paper batch 100, "
        f"best of {args.repeats} x {args.steps} steps"
    )
    print(f"trainer (mnist-paper): {ours:9.0f} images/s")
    print(f"plain PyTorch loop:    {plain:9.0f} images/s")
    print(f"ratio trainer/plain:   {ours / plain:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
