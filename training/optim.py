"""The optimizers of Algorithm 1's two players, and their schedule: the paper's SGD with a learning
rate decayed per update and a momentum ramped over epochs (goodfeli/adversarial's mnist.yaml), or
Adam."""

from __future__ import annotations

import torch

from training.config import OptimConfig


def make_optimizer(cfg: OptimConfig, params) -> torch.optim.Optimizer:
    if cfg.kind == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas)


def schedule(opt: torch.optim.Optimizer, cfg: OptimConfig, updates: int, epoch: int) -> None:
    """Set lr and momentum for the next update: lr / decay^updates (floored), momentum ramped by epoch."""
    lr = max(cfg.lr / cfg.lr_decay**updates, cfg.min_lr) if cfg.lr_decay != 1.0 else cfg.lr
    for group in opt.param_groups:
        group["lr"] = lr
        if cfg.kind == "sgd" and cfg.final_momentum is not None and cfg.momentum_epochs > 0:
            t = min(epoch / cfg.momentum_epochs, 1.0)
            group["momentum"] = cfg.momentum + (cfg.final_momentum - cfg.momentum) * t
