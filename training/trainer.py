"""Algorithm 1 of Goodfellow et al. (2014): k steps of D, then one step of G, on minibatches of m.

The loop knows nothing about the particular networks: anything model-specific (like starting G's
output at the data's mean) is a hook. One *step* is k D updates and one G update; one *epoch* is one
pass of D's minibatches over the training split. Every epoch writes a line to metrics.jsonl, a
sample grid and a checkpoint; the run also checkpoints when it stops (max_steps, Ctrl-C).

All randomness flows from the config's seed: the data order (a DistributedSampler's permutation of
each pass, seeded seed + 1 + pass), the latents (a generator whose state the checkpoint saves) and
torch's global generator that dropout, augmentation and style mixing use (its state saved too), so a
resumed run continues bit for bit on the CPU.

Under torchrun the same loop runs on every rank (training/distributed.py): G and D's objective are
wrapped in DistributedDataParallel, each rank takes batch_size / K of the global batch, and rank 0
alone writes metrics, grids, checkpoints and config.json. docs/DESIGN.md says how ("Training on
several processes").
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from training import augment, distributed
from training.checkpoint import Checkpoint, latest_checkpoint, load_checkpoint
from training.config import TrainConfig
from training.data import load_dataset
from training.distributed import Ranks
from training.divergence import reduce_and_check
from training.epoch_grid import write_epoch_grid
from training.errors import TrainingError
from training.losses import g_loss
from training.networks import build_discriminator, build_generator, sample_latent
from training.objectives import DiscriminatorObjective
from training.optim import make_optimizer, schedule
from training.precision import LossScaler, autocast, check_precision
from training.resume import restore_run, save_run
from training.sharding import PassOrder

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
    on_start: list[Hook] = field(default_factory=list)  # a fresh run, after init, before step 1; every rank
    # after each epoch's metrics row; on rank 0 only (the rank that writes outputs)
    on_epoch_end: list[Callable[[Context, dict], None]] = field(default_factory=list)


def init_g_bias_from_data(ctx: Context) -> None:
    """The paper's MNIST code starts G's output bias at the pixel means; nets that can, do."""
    if ctx.config.g_bias_from_data and hasattr(ctx.generator, "init_output_bias"):
        ctx.generator.init_output_bias(ctx.data.mean(dim=0))  # (*sample_shape)


def default_hooks() -> Hooks:
    return Hooks(on_start=[init_g_bias_from_data])


class TrainingRun:
    """The state of one training run (this rank's share of it) and its Algorithm 1 step."""

    def __init__(self, config: TrainConfig, out_dir: Path, hooks: Hooks, ranks: Optional[Ranks] = None):
        self.config, self.out_dir, self.hooks = config, out_dir, hooks
        self.ranks = ranks or distributed.current()
        self.device = distributed.pick_device(config.device, self.ranks)
        check_precision(config.precision, self.device)
        self.local_batch = distributed.per_rank_batch(config, self.ranks.world)  # this rank's part of the batch
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
        torch.manual_seed(config.seed)  # init draws from the global generator: the same weights on every rank
        self.G = build_generator(config.network).to(self.device)
        self.D = build_discriminator(config.network).to(self.device)
        self.G_ema: Optional[torch.nn.Module] = None  # made by start() or restore(), if the config asks
        self.opt_d = make_optimizer(config.d_optim, self.D.parameters())
        self.opt_g = make_optimizer(config.g_optim, self.G.parameters())
        self.scaler_d = LossScaler(config.precision, self.device)  # fp16's loss scale, one per network
        self.scaler_g = LossScaler(config.precision, self.device)
        self.order = PassOrder(len(x), self.ranks.rank, self.ranks.world, seed=config.seed + 1)
        self.noise_gen = torch.Generator().manual_seed(config.seed + 2)  # the same latents on every rank
        self.shard: Optional[torch.Tensor] = None  # this rank's indices of the pass in progress
        self.pass_index = 0  # passes over the data begun and ended
        self.pos, self.step, self.epoch, self.wall = 0, 0, 0, 0.0  # pos: samples of the global batches taken
        self.sums = self._zero_sums()
        self.pending_epochs = 0  # passes completed inside the current step
        self.augment = augment.parse(config.augment)
        self.last_checkpoint: Optional[Path] = None  # the latest written or resumed from: what a failure keeps
        if self.ranks.rank > 0:
            # Dropout, augmentation and style mixing draw from here: each rank its own stream.
            torch.manual_seed(distributed.rank_seed(config.seed, self.ranks.rank))
        # The losses whose NaN or inf stops the run. Under fp16 an R1 term that overflowed is the loss
        # scale's doing, not divergence: its gradients are not finite either, so the scaler skips that
        # update and halves the scale, as for any overflow.
        self.d_checked = ("d_loss",) if config.precision == "fp16" else ("d_loss", "r1")
        r1_weight = config.d_r1_gamma * config.d_r1_every
        self.d_objective = DiscriminatorObjective(self.D, self.augment, r1_weight, config.precision)
        # What the updates call: G and D's objective, each wrapped in DDP by wrap() on several ranks.
        self.g_train: torch.nn.Module = self.G
        self.d_train: torch.nn.Module = self.d_objective

    @staticmethod
    def _zero_sums() -> dict:
        return {"d_real": 0.0, "d_fake": 0.0, "loss_d": 0.0, "loss_g": 0.0, "d_updates": 0, "g_updates": 0}

    def wrap(self) -> None:
        """DDP around G and around D's objective, once the weights are final (fresh or resumed): DDP
        starts by sending rank 0's weights and buffers to every rank."""
        self.g_train = distributed.wrap(self.G, self.device, self.ranks)
        self.d_train = distributed.wrap(self.d_objective, self.device, self.ranks)

    def start_ema(self) -> None:
        """Begin the weight average from G as initialised (after the on_start hooks). Rank 0 alone
        keeps it: G's weights are the same on every rank after each step, and rank 0 saves."""
        if self.config.g_ema_decay > 0 and self.ranks.main:
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

    def where(self) -> str:
        return f"step {self.step + 1}, epoch {self.epoch + 1}"

    # ---- Algorithm 1 ----
    def _pass_ended(self) -> bool:
        return self.shard is not None and self.pos + self.config.batch_size > self.order.usable

    def _end_pass(self) -> None:
        self.pending_epochs += 1
        self.pass_index += 1
        self.shard = None

    def next_batch(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(x, y): this rank's rows of the next m training samples and, for a conditional run, their classes."""
        if self._pass_ended():  # a pass ended inside this step (k > 1)
            self._end_pass()
        if self.shard is None:
            self.shard, self.pos = self.order.shard(self.pass_index).to(self.device), 0
        start = self.pos // self.ranks.world
        idx = self.shard[start : start + self.local_batch]
        self.pos += self.config.batch_size
        return self.data[idx], (
            self.labels[idx] if self.labels is not None else None
        )  # (m / K, *sample_shape), (m / K,)

    def noise(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(z, c): this rank's rows of m latents and, for a conditional run, m classes drawn from the
        training labels' own frequencies (so p(c) of the fakes is that of the data, and D cannot tell
        them apart by c). Every rank draws all m, so together they hold what one process would."""
        m, rank, world = self.config.batch_size, self.ranks.rank, self.ranks.world
        z = sample_latent(self.config.network.latent, m, self.noise_gen)  # (m, z_dim)
        z = (z if world == 1 else z[rank::world].contiguous()).to(self.device)  # (m / K, z_dim)
        if self.labels is None:
            return z, None
        pick = torch.randint(len(self.labels), (m,), generator=self.noise_gen)[rank::world].to(self.device)
        return z, self.labels[pick]  # (m / K,)

    def train_step(self) -> None:
        cfg = self.config
        for i in range(cfg.d_steps):
            # (1) D: maximize log D(x) + log(1 - D(G(z)))
            update = self.step * cfg.d_steps + i
            schedule(self.opt_d, cfg.d_optim, update, self.epoch)
            x, y = self.next_batch()
            x = augment.augment_reals(x, self.augment)
            z, c = self.noise()
            with torch.no_grad(), autocast(cfg.precision, self.device):
                fake = self.g(self.G, z, c)  # (m / K, *sample_shape); no gradient, so no DDP
            r1 = cfg.d_r1_gamma > 0 and update % cfg.d_r1_every == 0
            loss, stats = self.d_train(x, y, fake, c, r1, self.scaler_d.scale)
            adversarial, penalty, d_real, d_fake = reduce_and_check(
                stats, self.d_checked, self.where(), self.ranks, self.last_checkpoint
            )
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler_d.backward_and_step(loss, self.opt_d)  # DDP averages D's gradients over the ranks
            s = self.sums
            s["d_real"] += d_real
            s["d_fake"] += d_fake
            s["loss_d"] += adversarial + (penalty if math.isfinite(penalty) else 0.0)
            s["d_updates"] += 1
        # (2) G: maximize log D(G(z))   (or minimize log(1 - D(G(z))) with g_loss=minimax)
        schedule(self.opt_g, cfg.g_optim, self.step, self.epoch)
        z, c = self.noise()
        # D is frozen here: its gradients would be thrown away, and D is not called through DDP in G's
        # update, so no DDP hook may see a gradient of D's.
        self.D.requires_grad_(False)
        try:
            with autocast(cfg.precision, self.device):
                logit = self.d_objective.logits(self.g(self.g_train, z, c), c)
            loss = g_loss(logit.float(), cfg.g_loss)
            (value,) = reduce_and_check(
                loss.detach()[None], ("g_loss",), self.where(), self.ranks, self.last_checkpoint
            )
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.backward_and_step(loss, self.opt_g)  # DDP averages G's gradients over the ranks
        finally:
            self.D.requires_grad_(True)
        self.update_ema()
        self.sums["loss_g"] += value
        self.sums["g_updates"] += 1
        self.step += 1
        if self._pass_ended():
            self._end_pass()

    # Unconditional networks keep their one-argument call (the same graph as before conditioning existed).
    def g(self, net: torch.nn.Module, z: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        return net(z) if c is None else net(z, c)

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
        if self.ranks.main:  # the sums are already means over the ranks (divergence.reduce_and_check)
            with open(self.out_dir / METRICS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            write_epoch_grid(self, partial)
        if partial:
            return row
        self.sums = self._zero_sums()
        if self.ranks.main:
            for hook in self.hooks.on_epoch_end:
                hook(self.context(), row)
        return row


def _forget_rows_after(out_dir: Path, step: int) -> None:
    """Drop metrics rows written after the checkpoint a run resumes from (a crash between an epoch's
    row and its checkpoint, or a rank killed mid-run): the resumed run writes them again."""
    path = out_dir / METRICS_FILE
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _latest(out_dir: Path) -> Optional[Checkpoint]:
    path = latest_checkpoint(out_dir)
    return load_checkpoint(path) if path is not None else None


def _announce(run: TrainingRun, ckpt: Optional[Checkpoint]) -> None:
    """One line on stderr from rank 0: the global batch, its split over the ranks, the learning
    rates and the precision; and where a resumed run starts from."""
    cfg, ranks = run.config, run.ranks
    split = (
        f"{ranks.world} processes x {run.local_batch}, {distributed.backend()}" if ranks.distributed else "1 process"
    )
    line = (
        f"{cfg.preset}: global batch {cfg.batch_size} ({split}) on {run.device}, "
        f"lr_d {cfg.d_optim.lr:g}, lr_g {cfg.g_optim.lr:g}, precision {cfg.precision}"
    )
    if ckpt is not None:
        restart = f", torchrun restart {ranks.restart}" if ranks.restart else ""
        line += f"; resuming from {ckpt.path.parent.name}/{ckpt.path.name} (step {ckpt.step}{restart})"
    tqdm.write(line, file=sys.stderr)


def train(
    config: TrainConfig,
    out_dir: Path | str,
    *,
    max_steps: Optional[int] = None,
    progress: bool = True,
    hooks: Optional[Hooks] = None,
) -> Path:
    """Train until `config.epochs` passes or step `max_steps` (counted from the run's start, so a
    resumed run with max_steps=2N stops at step 2N). Resumes from out_dir's latest checkpoint.

    Inside a torchrun process group (training/distributed.py) every rank calls this alike: rank 0
    reads the latest checkpoint and sends it to the others, so all resume from the same one, and
    rank 0 alone writes."""
    out_dir = Path(out_dir)
    ranks = distributed.current()
    if ranks.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    run = TrainingRun(config, out_dir, hooks or default_hooks(), ranks)
    ckpt = distributed.from_main(lambda: _latest(out_dir), ranks)
    if ckpt is not None:
        restore_run(run, ckpt)
        if ranks.main:
            _forget_rows_after(out_dir, ckpt.step)
    else:
        for hook in run.hooks.on_start:
            hook(run.context())
        run.start_ema()
    run.wrap()
    if ranks.main:
        (out_dir / CONFIG_FILE).write_text(config.to_json() + "\n", encoding="utf-8")
        if progress or ranks.distributed:
            _announce(run, ckpt)
    steps_per_epoch = (len(run.data) // config.batch_size) / config.d_steps
    total = math.ceil(config.epochs * steps_per_epoch)
    if max_steps is not None:
        total = min(total, max_steps)
    bar = tqdm(
        total=total,
        initial=min(run.step, total),
        disable=not (progress and ranks.main),
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
