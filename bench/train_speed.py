"""Training speed on this machine, two ways.

1. The `mnist-paper` preset next to a plain hand-written PyTorch loop of the same networks, batch
   size and optimiser: images/s of each and the ratio.

       .venv/bin/python bench/train_speed.py [--steps 200] [--threads N]

2. `--scaling`: steps/s of a preset trained by torchrun on 1 and on 2 processes (gloo on the CPU,
   DistributedDataParallel; docs/DESIGN.md, "Training on several processes"), at the same global
   batch, so the ratio is what a second process buys. Points are PROCESSESxTHREADS (torch threads
   per process): by default 1x1, 1x2 and 2x1 on two cores, so one process is measured both on one
   core and on both (where torch's threads may fight other work for the cores).

       .venv/bin/python bench/train_speed.py --scaling [--preset emoji-style] [--points 1x1,1x2,2x1]
           [--steps 40] [--warmup 5] [--set key=value ...] [--json out.json]

"Images" are the real images D sees (batch x k per step). The trainer's time is its own
`wall_time_s` (the steps only; per-epoch grids and checkpoints are excluded, and under torchrun it is
rank 0's, waits for the other ranks included), read from a run's checkpoint after a warm-up, so
start-up and warm-up are not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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
REPO = Path(__file__).resolve().parents[1]


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


def torchrun_steps(preset: str, run_dir: Path, processes: int, threads: int, steps: int, overrides: list[str]) -> None:
    """Train run_dir to step `steps` on `processes` processes (resuming where it is)."""
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    args += ["-m", "training", "train", "--preset", preset, "--out", str(run_dir), "--max-steps", str(steps)]
    args += ["--threads", str(threads), "--quiet", *[a for o in overrides for a in ("--set", o)]]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"torchrun on {processes} process(es) failed:\n{proc.stderr[-3000:]}")


def scaling(args: argparse.Namespace) -> int:
    """steps/s of one preset at each number of processes, the same global batch throughout."""
    from host import cpu, describe, load_average  # bench/host.py, beside this script

    config = resolve(args.preset, args.overrides)
    cores = cpu()["cores"]
    spec = args.points or f"1x1,1x{cores},{cores}x1"
    points = [tuple(int(n) for n in p.split("x")) for p in spec.split(",")]
    print(describe())
    load_before = load_average()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, tqdm(total=2 * len(points), desc="scaling", unit="launch") as bar:
        for k, threads in points:
            run_dir = Path(tmp) / f"run-{k}x{threads}"
            bar.set_postfix(processes=k, phase="warm-up")
            torchrun_steps(args.preset, run_dir, k, threads, args.warmup, args.overrides)
            before = load_run(run_dir).wall_time_s
            bar.update(1)
            bar.set_postfix(processes=k, phase=f"{args.steps} steps")
            torchrun_steps(args.preset, run_dir, k, threads, args.warmup + args.steps, args.overrides)
            seconds = load_run(run_dir).wall_time_s - before
            bar.update(1)
            rows.append({"processes": k, "threads_each": threads, "steps": args.steps, "seconds": round(seconds, 3)})
    load_after = load_average()
    base = rows[0]["steps"] / rows[0]["seconds"]  # the first point (1x1 by default)
    images = config.batch_size * config.d_steps
    print(
        f"{args.preset}: global batch {config.batch_size} (k = {config.d_steps}), {args.steps} steps after "
        f"{args.warmup} warm-up, torch {torch.__version__}, gloo; load average {load_before:.2f} before, "
        f"{load_after:.2f} after"
    )
    print(f"{'processes':>9} {'threads each':>12} {'per process':>11} {'steps/s':>8} {'images/s':>9} {'vs first':>8}")
    for row in rows:
        rate = row["steps"] / row["seconds"]
        row.update(steps_per_s=round(rate, 3), images_per_s=round(rate * images, 1), vs_first=round(rate / base, 2))
        per = config.batch_size // row["processes"]
        print(
            f"{row['processes']:>9} {row['threads_each']:>12} {per:>11} {rate:>8.2f} {rate * images:>9.1f} "
            f"{row['vs_first']:>8.2f}"
        )
    if args.json:
        record = {"host": describe(), "preset": args.preset, "overrides": args.overrides, "rows": rows}
        record.update(load_before=load_before, load_after=load_after, torch=torch.__version__)
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scaling", action="store_true", help="steps/s at 1 and more processes under torchrun")
    parser.add_argument("--preset", default="emoji-style", help="--scaling: the preset to train")
    parser.add_argument(
        "--points", help="--scaling: PROCESSESxTHREADS, comma-separated (default 1x1,1xC,Cx1 for C cores)"
    )
    parser.add_argument("--warmup", type=int, default=5, help="--scaling: steps before the clock starts")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", help="--scaling: also write the figures to this file")
    parser.add_argument("--steps", type=int, help="steps per measurement (200; --scaling: 40)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="interleaved rounds; the best of each side counts (shared machines drift)",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.steps is None:
        args.steps = 40 if args.scaling else 200
    if args.scaling:
        return scaling(args)
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
