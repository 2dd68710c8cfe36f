"""D's loss for one update as one module, so that DistributedDataParallel can wrap it.

One D update looks at D twice (the real batch, the fakes) and, on R1 updates, differentiates D's
real logits with respect to the real images with create_graph=True. DDP expects one forward and one
backward per update, and averages the parameters' gradients over the ranks from hooks that fire as
each parameter's gradient is accumulated. So the whole objective runs in this module's forward:

- both D passes happen inside it (one DDP forward), and the loss comes out of it;
- R1's torch.autograd.grad asks for the gradient with respect to the images only: it accumulates
  nothing into the parameters, so DDP's hooks do not fire there;
- the one loss.backward() after it reaches every parameter through both the first-order terms and
  R1's double-backward graph, and DDP averages those full gradients once.

The module holds D and no parameters of its own, so its state is D's (checkpoints save D itself).
On a single process it runs unwrapped, the same code.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from training import augment
from training.losses import d_loss, r1_penalty
from training.precision import autocast


class DiscriminatorObjective(nn.Module):
    def __init__(self, D: nn.Module, augment_kinds: tuple[str, ...], r1_weight: float, precision: str):
        super().__init__()
        self.D = D
        self.augment_kinds = augment_kinds
        self.r1_weight = r1_weight  # gamma x d_r1_every: lazy R1 weighs each of its updates by the interval
        self.precision = precision

    def logits(self, x: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        x = augment.diff_augment(x, self.augment_kinds)  # what D sees of every image, real or fake, in training
        return self.D(x) if c is None else self.D(x, c)

    def forward(
        self,
        x: torch.Tensor,
        y: Optional[torch.Tensor],
        fake: torch.Tensor,
        c: Optional[torch.Tensor],
        r1: bool,
        grad_scale: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, stats): the loss to minimise, and (adversarial loss, R1 term, mean D(x), mean D(G(z)))
        of this rank's batch, detached. `grad_scale` is fp16's loss scale (1 otherwise)."""
        if r1:
            x = x.detach().requires_grad_(True)  # R1 differentiates D's logit w.r.t. the real batch
        with autocast(self.precision, x.device):
            # With network.d_pack = p > 1, D packs each run of p consecutive samples: the real batch is
            # a random draw and the fakes come from independent z, so every pack holds p independent
            # samples of one kind. Logits are then (m / p, 1).
            real_logit, fake_logit = self.logits(x, y), self.logits(fake, c)  # (m, 1) each
        real_logit, fake_logit = real_logit.float(), fake_logit.float()
        adversarial = d_loss(real_logit, fake_logit)
        loss = adversarial
        if r1:
            penalty = self.r1_weight * r1_penalty(real_logit, x, grad_scale)
            loss = loss + penalty
        else:
            penalty = torch.zeros((), device=loss.device)
        stats = torch.stack([adversarial, penalty, torch.sigmoid(real_logit).mean(), torch.sigmoid(fake_logit).mean()])
        return loss, stats.detach()
