"""Latents: a seed is a portable handle (pinned values), truncation, and the two paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.card import Latent
from service.core import latents

UNIFORM = Latent(dim=4, distribution="uniform", low=-math.sqrt(3), high=math.sqrt(3))
NORMAL = Latent(dim=4, distribution="normal")


def test_seed_gives_pinned_values_on_every_machine():
    # PCG64 + numpy's samplers are platform-independent: these numbers must never change, or
    # every seed a user kept would silently give other samples.
    np.testing.assert_allclose(
        latents.draw(latents.generator(0), UNIFORM, 1), [[0.47444919, -0.79748219, -1.59011436, -1.67479742]], rtol=1e-6
    )
    np.testing.assert_allclose(
        latents.draw(latents.generator(2**64 - 1), NORMAL, 1),
        [[0.72133648, -0.97079617, 0.06922650, -0.29658368]],
        rtol=1e-6,
    )


def test_drawing_in_chunks_continues_the_same_stream():
    # Rejection sampling draws chunk after chunk: the rows must be those of one big draw.
    whole = latents.draw(latents.generator(7), NORMAL, 10)
    rng = latents.generator(7)
    parts = np.concatenate([latents.draw(rng, NORMAL, 3), latents.draw(rng, NORMAL, 7)])
    np.testing.assert_array_equal(whole, parts)


def test_streams_of_one_seed_are_independent():
    assert not np.array_equal(latents.generator(5).random(8), latents.generator(5, stream=1).random(8))


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_seed_out_of_range_is_refused(seed):
    with pytest.raises(ValueError, match="seed"):
        latents.generator(seed)


def test_uniform_latents_stay_within_their_bounds_and_are_float32():
    z = latents.draw(latents.generator(1), UNIFORM, 2000)
    assert z.dtype == np.float32 and z.shape == (2000, 4)
    assert z.min() >= -math.sqrt(3) and z.max() <= math.sqrt(3)
    assert abs(z.std() - 1.0) < 0.05  # U(-sqrt 3, sqrt 3) has unit variance


@given(threshold=st.floats(0.2, 3.0), seed=st.integers(0, 2**64 - 1))
@settings(max_examples=25, deadline=None)
def test_truncation_resamples_every_coordinate_beyond_the_threshold(threshold, seed):
    z = latents.draw(latents.generator(seed), NORMAL, 64, truncation=threshold)
    assert np.abs(z).max() <= np.float32(threshold)
    again = latents.draw(latents.generator(seed), NORMAL, 64, truncation=threshold)
    np.testing.assert_array_equal(z, again)


def test_truncation_changes_only_the_coordinates_beyond_it():
    plain = latents.draw(latents.generator(3), NORMAL, 100)
    cut = latents.draw(latents.generator(3), NORMAL, 100, truncation=1.0)
    inside = np.abs(plain) <= 1.0
    np.testing.assert_array_equal(plain[inside], cut[inside])
    assert (plain[~inside] != cut[~inside]).all()


@pytest.mark.parametrize("latent, threshold", [(NORMAL, 1e-4), (UNIFORM, 0.0), (UNIFORM, float("nan"))])
def test_truncation_that_would_resample_forever_is_refused(latent, threshold):
    with pytest.raises(ValueError, match="truncation"):
        latents.draw(latents.generator(0), latent, 4, truncation=threshold)


def test_lerp_and_slerp_start_and_end_at_the_ends():
    a, b = latents.draw(latents.generator(1), NORMAL, 2)
    t = np.linspace(0, 1, 5)
    for path in (latents.lerp(a, b, t), latents.slerp(a, b, t)):
        assert path.shape == (5, 4) and path.dtype == np.float32
        np.testing.assert_allclose(path[0], a, atol=1e-6)
        np.testing.assert_allclose(path[-1], b, atol=1e-6)


def test_slerp_keeps_the_norm_that_lerp_loses():
    a = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
    b = np.array([0.0, 1.0, 0.0, 0.0], np.float32)
    mid = np.array([0.5])
    assert np.linalg.norm(latents.slerp(a, b, mid)[0]) == pytest.approx(1.0, abs=1e-6)
    assert np.linalg.norm(latents.lerp(a, b, mid)[0]) == pytest.approx(math.sqrt(0.5), abs=1e-6)


def test_slerp_of_parallel_or_zero_vectors_falls_back_to_lerp():
    a = np.ones(4, np.float32)
    t = np.linspace(0, 1, 3)
    np.testing.assert_allclose(latents.slerp(a, 2 * a, t), latents.lerp(a, 2 * a, t), atol=1e-6)
    assert np.isfinite(latents.slerp(np.zeros(4, np.float32), a, t)).all()
