"""Algorithm 1 of Goodfellow et al. (2014): k steps of D, then one step of G, on minibatches of m.

The loop knows nothing about the particular networks: anything model-specific (like starting G's
output at the data's mean) is a hook. One *step* is k D updates and one G update; one *epoch* is one
pass of D's minibatches over the training split. Every epoch writes a line to metrics.jsonl, a
sample grid and a checkpoint; the run also checkpoints when it stops (max_steps, Ctrl-C).

All randomness flows from the config's seed through generators whose states the checkpoint saves
(data order, noise, and torch's global generator that dropout uses), so a resumed run continues
bit for bit on the CPU.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from training import augment
from training.checkpoint import latest_checkpoint
from training.config import TrainConfig
from training.data import load_dataset
from training.epoch_grid import write_epoch_grid
from training.errors import TrainingError
from training.losses import d_loss, g_loss, r1_penalty
from training.networks import build_discriminator, build_generator, sample_latent
from training.optim import make_optimizer, schedule
from training.resume import restore_run, save_run

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"


@dataclass
class Context:
    """What hooks see: the run's config, networks, training data and where outputs go."""

    config: TrainConfig
    generator: torch.nn.Module
    discriminator: torch.nn.Module
    data: torch.Tensor  # (N, *sample_shape) on `device`
    out_dir: Path
    device: torch.device
    step: int = 0
    epoch: int = 0


Hook = Callable[[Context], None]


@dataclass
class Hooks:
    on_start: list[Hook] = field(default_factory=list)  # a fresh run, after init, before step 1
    on_epoch_end: list[Callable[[Context, dict], None]] = field(default_factory=list)


def init_g_bias_from_data(ctx: Context) -> None:
    """The paper's MNIST code starts G's output bias at the pixel means; nets that can, do."""
    if ctx.config.g_bias_from_data and hasattr(ctx.generator, "init_output_bias"):
        ctx.generator.init_output_bias(ctx.data.mean(dim=0))  # (*sample_shape)


def default_hooks() -> Hooks:
    return Hooks(on_start=[init_g_bias_from_data])


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device: 'cuda' asked for, but torch sees no CUDA device")
    return torch.device(name)


class TrainingRun:
    """The state of one training run and its Algorithm 1 step."""

    def __init__(self, config: TrainConfig, out_dir: Path, hooks: Hooks):
        self.config, self.out_dir, self.hooks = config, out_dir, hooks
        self.device = _device(config.device)
        split = load_dataset(config.dataset, "train", **config.dataset_options)
        x = split.x
        if len(x) < config.batch_size:
            raise TrainingError(f"batch_size: {config.batch_size} is more than the {len(x)} training samples")
        self.data = x.to(self.device)  # (N, *sample_shape)
        self.classes = config.network.classes
        self.labels: Optional[torch.Tensor] = None  # (N,) int64, for a conditional run
        if self.classes:
            if split.y is None:
                raise TrainingError(f"conditional: {config.dataset}'s training split has no labels")
            self.labels = split.y.to(self.device)
        torch.manual_seed(config.seed)  # init and dropout draw from the global generator
        self.G = build_generator(config.network).to(self.device)
        self.D = build_discriminator(config.network).to(self.device)
        self.G_ema: Optional[torch.nn.Module] = None  # made by start() or restore(), if the config asks
        self.opt_d = make_optimizer(config.d_optim, self.D.parameters())
        self.opt_g = make_optimizer(config.g_optim, self.G.parameters())
        self.data_gen = torch.Generator().manual_seed(config.seed + 1)
        self.noise_gen = torch.Generator().manual_seed(config.seed + 2)
        self.perm: Optional[torch.Tensor] = None  # this epoch's order of the training set
        self.pos, self.step, self.epoch, self.wall = 0, 0, 0, 0.0
        self.sums = self._zero_sums()
        self.pending_epochs = 0  # passes completed inside the current step
        self.augment = augment.parse(config.augment)

    @staticmethod
    def _zero_sums() -> dict:
        return {"d_real": 0.0, "d_fake": 0.0, "loss_d": 0.0, "loss_g": 0.0, "d_updates": 0, "g_updates": 0}

    def start_ema(self) -> None:
        """Begin the weight average from G as initialised (after the on_start hooks)."""
        if self.config.g_ema_decay > 0:
            self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.G_ema is None:
            return
        for avg, p in zip(self.G_ema.state_dict().values(), self.G.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.lerp_(p, 1.0 - self.config.g_ema_decay)  # avg <- decay * avg + (1 - decay) * p
            else:
                avg.copy_(p)  # counters (batch-norm's num_batches_tracked)

    def context(self) -> Context:
        return Context(self.config, self.G, self.D, self.data, self.out_dir, self.device, self.step, self.epoch)

    # ---- Algorithm 1 ----
    def next_batch(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(x, y): m training samples and, for a conditional run, their classes."""
        m, n = self.config.batch_size, len(self.data)
        if self.perm is not None and self.pos + m > n:  # a pass ended inside this step (k > 1)
            self.pending_epochs += 1
            self.perm = None
        if self.perm is None:
            self.perm, self.pos = torch.randperm(n, generator=self.data_gen), 0
        idx = self.perm[self.pos : self.pos + m].to(self.device)
        self.pos += m
        return self.data[idx], (self.labels[idx] if self.labels is not None else None)  # (m, *sample_shape), (m,)

    def noise(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(z, c): m latents and, for a conditional run, m classes drawn from the training labels'
        own frequencies (so p(c) of the fakes is that of the data, and D cannot tell them apart by c)."""
        m = self.config.batch_size
        z = sample_latent(self.config.network.latent, m, self.noise_gen).to(self.device)  # (m, z_dim)
        if self.labels is None:
            return z, None
        pick = torch.randint(len(self.labels), (m,), generator=self.noise_gen).to(self.device)
        return z, self.labels[pick]  # (m,)

    def train_step(self) -> None:
        cfg = self.config
        for i in range(cfg.d_steps):
            # (1) D: maximize log D(x) + log(1 - D(G(z)))
            schedule(self.opt_d, cfg.d_optim, self.step * cfg.d_steps + i, self.epoch)
            x, y = self.next_batch()
            x = augment.augment_reals(x, self.augment)
            z, c = self.noise()
            with torch.no_grad():
                fake = self.g(self.G, z, c)  # (m, *sample_shape)
            r1 = cfg.d_r1_gamma > 0 and (self.step * cfg.d_steps + i) % cfg.d_r1_every == 0
            x.requires_grad_(r1)  # R1 differentiates D's logit w.r.t. the real batch
            # With network.d_pack = p > 1, D packs each run of p consecutive samples: the real batch is
            # a random draw and the fakes come from independent z, so every pack holds p independent
            # samples of one kind. Logits are then (m / p, 1).
            real_logit, fake_logit = self._d(x, y), self._d(fake, c)  # (m, 1) each
            loss = d_loss(real_logit, fake_logit)
            if r1:
                loss = loss + cfg.d_r1_gamma * cfg.d_r1_every * r1_penalty(real_logit, x)
            self._finite(loss, "D")
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_d.step()
            s = self.sums
            s["d_real"] += torch.sigmoid(real_logit).mean().item()
            s["d_fake"] += torch.sigmoid(fake_logit).mean().item()
            s["loss_d"] += loss.item()
            s["d_updates"] += 1
        # (2) G: maximize log D(G(z))   (or minimize log(1 - D(G(z))) with g_loss=minimax)
        schedule(self.opt_g, cfg.g_optim, self.step, self.epoch)
        z, c = self.noise()
        loss = g_loss(self._d(self.g(self.G, z, c), c), cfg.g_loss)
        self._finite(loss, "G")
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()  # D's grads from this pass are cleared before D's next update
        self.opt_g.step()
        self.update_ema()
        self.sums["loss_g"] += loss.item()
        self.sums["g_updates"] += 1
        self.step += 1
        if self.perm is not None and self.pos + cfg.batch_size > len(self.data):
            self.pending_epochs += 1
            self.perm = None

    # Unconditional networks keep their one-argument call (the same graph as before conditioning existed).
    def g(self, net: torch.nn.Module, z: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        return net(z) if c is None else net(z, c)

    def _d(self, x: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        x = augment.diff_augment(x, self.augment)  # what D sees of every image, real or fake, in training
        return self.D(x) if c is None else self.D(x, c)

    def _finite(self, loss: torch.Tensor, net: str) -> None:
        if not torch.isfinite(loss):
            raise TrainingError(
                f"step {self.step + 1}, epoch {self.epoch + 1}: {net} loss is {loss.item()}; "
                "the run diverged (lower the learning rate or check the data)"
            )

    # ---- per-epoch outputs ----
    def end_epoch(self, partial: bool = False) -> dict:
        """Log the epoch's means, write its grid, run the hooks. A `partial` row (the run stopped
        mid-epoch) keeps the sums, so the epoch's full row after a resume still covers all of it."""
        s = self.sums
        nd, ng = max(s["d_updates"], 1), max(s["g_updates"], 1)
        if not partial:
            self.epoch += 1
        row = {
            "epoch": self.epoch,
            "step": self.step,
            "partial": partial,
            "d_real": s["d_real"] / nd,
            "d_fake": s["d_fake"] / nd,
            "loss_d": s["loss_d"] / nd,
            "loss_g": s["loss_g"] / ng,
            "lr_d": self.opt_d.param_groups[0]["lr"],
            "lr_g": self.opt_g.param_groups[0]["lr"],
            "wall_time_s": round(self.wall, 3),
        }
        with open(self.out_dir / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        write_epoch_grid(self, partial)
        if partial:
            return row
        self.sums = self._zero_sums()
        for hook in self.hooks.on_epoch_end:
            hook(self.context(), row)
        return row


def train(
    config: TrainConfig,
    out_dir: Path | str,
    *,
    max_steps: Optional[int] = None,
    progress: bool = True,
    hooks: Optional[Hooks] = None,
) -> Path:
    """Train until `config.epochs` passes or step `max_steps` (counted from the run's start, so a
    resumed run with max_steps=2N stops at step 2N). Resumes from out_dir's latest checkpoint."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = TrainingRun(config, out_dir, hooks or default_hooks())
    ckpt = latest_checkpoint(out_dir)
    if ckpt is not None:
        restore_run(run, ckpt)
    else:
        for hook in run.hooks.on_start:
            hook(run.context())
        run.start_ema()
    (out_dir / CONFIG_FILE).write_text(config.to_json() + "\n", encoding="utf-8")
    steps_per_epoch = (len(run.data) // config.batch_size) / config.d_steps
    total = math.ceil(config.epochs * steps_per_epoch)
    if max_steps is not None:
        total = min(total, max_steps)
    bar = tqdm(
        total=total,
        initial=min(run.step, total),
        disable=not progress,
        unit="step",
        desc=f"{config.preset} epoch {run.epoch + 1}",
        dynamic_ncols=True,
    )
    dirty = False  # steps since the last checkpoint
    # An exception (divergence, Ctrl-C) leaves the last epoch's checkpoint as the latest: a save
    # in the middle of a step would not resume exactly.
    try:
        while run.epoch < config.epochs and (max_steps is None or run.step < max_steps):
            t0 = time.perf_counter()
            run.train_step()
            run.wall += time.perf_counter() - t0
            dirty = True
            bar.update(1)
            while run.pending_epochs and run.epoch < config.epochs:
                run.pending_epochs -= 1
                row = run.end_epoch()
                save_run(run)
                dirty = False
                bar.set_description(f"{config.preset} epoch {run.epoch + 1}")
                bar.set_postfix(d_real=f"{row['d_real']:.2f}", d_fake=f"{row['d_fake']:.2f}")
            run.pending_epochs = 0
    finally:
        bar.close()
    if dirty:  # stopped mid-epoch (max_steps): record what was seen and keep the work
        run.end_epoch(partial=True)
        save_run(run)
    return out_dir
