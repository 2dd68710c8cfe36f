"""The GAN losses against their definitions in terms of D = sigmoid(logit)."""

import math

import pytest
import torch

from training.losses import d_loss, g_loss, g_loss_minimax, g_loss_non_saturating, r1_penalty


def test_d_loss_is_the_negated_value_function():
    real, fake = torch.tensor([[2.0], [-0.5]]), torch.tensor([[0.3], [-1.0]])
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    expected = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    assert d_loss(real, fake).item() == pytest.approx(expected.item(), rel=1e-6)


def test_g_losses_match_their_definitions():
    fake = torch.tensor([[0.7], [-2.0], [0.0]])
    d_fake = torch.sigmoid(fake)
    assert g_loss_non_saturating(fake).item() == pytest.approx(-torch.log(d_fake).mean().item(), rel=1e-6)
    assert g_loss_minimax(fake).item() == pytest.approx(torch.log(1 - d_fake).mean().item(), rel=1e-6)
    assert g_loss(fake, "minimax").item() == g_loss_minimax(fake).item()
    assert g_loss(fake, "non_saturating").item() == g_loss_non_saturating(fake).item()


def test_at_equilibrium_d_loss_is_log_4():
    zero = torch.zeros(8, 1)  # D(x) = 1/2 everywhere: the paper's global optimum
    assert d_loss(zero, zero).item() == pytest.approx(math.log(4.0), rel=1e-6)


def test_losses_stay_finite_at_extreme_logits():
    big = torch.tensor([[200.0], [-200.0]])
    for value in (d_loss(big, big), g_loss_non_saturating(big), g_loss_minimax(big)):
        assert torch.isfinite(value)


def test_non_saturating_loss_keeps_gradient_when_d_rejects_fakes():
    # Early in training D(G(z)) ~ 0: the minimax loss saturates, the non-saturating one does not
    # (the paper's reason for maximizing log D(G(z))).
    grads = {}
    for name in ("minimax", "non_saturating"):
        logit = torch.tensor([[-8.0]], requires_grad=True)
        g_loss(logit, name).backward()
        grads[name] = logit.grad.abs().item()
    assert grads["non_saturating"] > 0.99
    assert grads["minimax"] < 1e-3


def test_unknown_g_loss_is_named():
    with pytest.raises(ValueError, match="g_loss"):
        g_loss(torch.zeros(2, 1), "wasserstein")


def test_r1_penalty_of_a_linear_discriminator_is_half_its_squared_slope():
    # D(x) = w.x + b has gradient w everywhere: the penalty is exactly 0.5 * ||w||^2.
    w = torch.tensor([3.0, -4.0])
    x = torch.randn(16, 2, requires_grad=True)
    logit = (x @ w + 1.0)[:, None]  # (16, 1)
    assert torch.isclose(r1_penalty(logit, x), torch.tensor(12.5))
