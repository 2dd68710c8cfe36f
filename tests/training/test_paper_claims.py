"""The paper's claims that are quick to check, each against its threshold (training/paper/).

Proposition 1 and Theorem 1 are statements about the optimal discriminator of a fixed G; here G
is fixed in closed form (an affine map of N(0, 1)), so p_g is exact and D is the only thing trained.
The negative checks show each threshold can fail: an untrained D, or a G away from p_data.

The thresholds are stated here, not imported from training/paper/: a check loosened in the code
under test must not loosen the test with it. Each result's own `passed` flag must agree with them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.data.toy import TOY1D_MEAN, TOY1D_STD, toy1d_density
from training.evaluation.density1d import jsd
from training.paper import proposition1, theorem1

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# Proposition 1: D*_G(x) = p_data / (p_data + p_g); a D trained to convergence is within this mean
# absolute error of it over the data's support (mean +- 3 std).
PROP1_MAX_MAE = 0.05
# Theorem 1: C(G) = -log 4 at p_g = p_data, with D = 1/2 there; both within this of the exact value.
THM1_TOLERANCE = 0.05
MINUS_LOG4 = -math.log(4)


def test_proposition1_trained_d_matches_the_optimal_discriminator():
    draw, p_g = proposition1.affine_g(*proposition1.SHIFTED_G)
    r = proposition1.check(draw, p_g, steps=600)
    assert r.mae < PROP1_MAX_MAE  # measured ~0.004
    assert r.passed


def test_proposition1_threshold_fails_for_an_untrained_d():
    draw, p_g = proposition1.affine_g(*proposition1.SHIFTED_G)
    r = proposition1.check(draw, p_g, steps=5)
    assert r.mae > PROP1_MAX_MAE and not r.passed  # measured ~0.15


def test_theorem1_at_p_g_equal_p_data_d_is_half_and_c_is_minus_log4():
    r = theorem1.check_at_optimum(steps=300)
    assert abs(r.criterion - MINUS_LOG4) < THM1_TOLERANCE  # measured gap ~4e-5
    assert r.d_mean_abs_from_half < THM1_TOLERANCE
    assert r.passed


def test_theorem1_c_of_a_wrong_g_is_minus_log4_plus_twice_the_jsd():
    # C(G) = -log 4 + 2 JSD(p_data || p_g): above the minimum, by exactly the closed-form amount.
    shift, scale = proposition1.SHIFTED_G
    draw, p_g = proposition1.affine_g(shift, scale)
    r = theorem1.converged_criterion(draw, steps=600)
    grid = np.linspace(TOY1D_MEAN - 10 * TOY1D_STD, TOY1D_MEAN + 10 * TOY1D_STD, 8001)
    closed = MINUS_LOG4 + 2 * jsd(toy1d_density(grid), p_g(grid), grid[1] - grid[0])  # the theorem's C(G)
    assert not r.passed and r.criterion - MINUS_LOG4 > 0.1  # well above -log 4
    assert r.criterion == pytest.approx(closed, abs=0.02)
