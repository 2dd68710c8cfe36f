"""The GAN losses, written once, from D's logits. Sigmoid is never applied before these: the
identities below are exact and stable where log(sigmoid(.)) would underflow.

    -log D(x)       = softplus(-logit)
    -log(1 - D(x))  = softplus(logit)

Each function returns a loss to *minimize* (the mean over the batch).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

GLoss = Literal["non_saturating", "minimax"]
G_LOSSES: tuple[str, ...] = ("non_saturating", "minimax")


def d_loss(real_logit: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    """D maximizes log D(x) + log(1 - D(G(z))): minimize the negation."""
    return F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()  # -log sigmoid(real) - log(1 - sigmoid(fake))


def g_loss_non_saturating(fake_logit: torch.Tensor) -> torch.Tensor:
    """G maximizes log D(G(z)) (the paper's practical choice: strong gradients early on)."""
    return F.softplus(-fake_logit).mean()  # -log sigmoid(logit)


def g_loss_minimax(fake_logit: torch.Tensor) -> torch.Tensor:
    """G minimizes log(1 - D(G(z))), the game's value as written (saturates when D wins)."""
    return -F.softplus(fake_logit).mean()  # log(1 - sigmoid(logit))


def g_loss(fake_logit: torch.Tensor, kind: GLoss) -> torch.Tensor:
    if kind == "non_saturating":
        return g_loss_non_saturating(fake_logit)
    if kind == "minimax":
        return g_loss_minimax(fake_logit)
    raise ValueError(f"g_loss: unknown kind {kind!r}; known: {', '.join(G_LOSSES)}")


def r1_penalty(real_logit: torch.Tensor, real_x: torch.Tensor, grad_scale: float = 1.0) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): the mean squared norm of D's gradient on real data, 1/2 ||grad D(x)||^2.

    Penalising D's slope where the data lies keeps D from growing arbitrarily sharp on a small training
    set; the Nash equilibrium p_g = p_data is unchanged (there D is flat, the penalty zero). `real_x`
    must have requires_grad set before D saw it.

    Under fp16 (training/precision.py) the gradient is taken of the logits times the loss scale, so it
    does not underflow in D's half-precision backward, and divided by the scale again: the penalty is
    the same, from a gradient fp16 can hold. With grad_scale 1 nothing is multiplied.
    """
    out = real_logit.sum() if grad_scale == 1.0 else real_logit.sum() * grad_scale
    (grad,) = torch.autograd.grad(out, real_x, create_graph=True)  # (m, *sample_shape)
    if grad_scale != 1.0:
        grad = grad / grad_scale
    return 0.5 * grad.pow(2).flatten(1).sum(1).mean()
