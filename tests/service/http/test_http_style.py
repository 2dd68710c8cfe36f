"""A style-based model over HTTP: truncation in w, style mixing, w in and out, the walk in w, and
every field refused where it cannot apply. The model is `tiny-style`, a network written in the
tests (tests/style_factory.py) and packed from its ONNX graphs, so these check the BYO path too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests import style_factory as foreign
from tests.service.support import DEFAULT, STYLE


def post(client, path: str, **body) -> dict:
    r = client.post(path, json={"model": STYLE, **body})
    assert r.status_code == 200, r.text
    return r.json()


def samples(answer: dict) -> np.ndarray:
    return np.asarray(answer["samples"], np.float32)


def test_served_samples_are_the_torch_networks_on_the_same_latents(client):
    mapping, synthesis, _, _ = foreign.build(0)
    z = np.random.default_rng(3).standard_normal((5, foreign.Z_DIM)).astype(np.float32)
    c = [0, 1, 2, 0, 1]
    got = samples(post(client, "/sample", latents=z.tolist(), labels=c))
    with torch.no_grad():
        w = mapping(torch.from_numpy(z), torch.tensor(c))
        want = synthesis(w[:, None].repeat(1, foreign.NUM_WS, 1)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_psi_zero_draws_w_avgs_image_for_every_seed(client, service_models_dir):
    w_avg = np.load(service_models_dir / STYLE / "w_avg.npy")
    a = samples(post(client, "/sample", seed=1, n=4, truncation_psi=0.0))
    b = samples(post(client, "/sample", seed=2, n=4, truncation_psi=0.0))
    at_avg = samples(post(client, "/sample", w=[w_avg.tolist()]))
    assert np.array_equal(a, b) and all(np.array_equal(x, at_avg[0]) for x in a)
    assert not np.array_equal(samples(post(client, "/sample", seed=1, n=4)), a)  # psi matters


def test_psi_pulls_w_towards_w_avg_on_the_cutoffs_layers_only(client, service_models_dir):
    w_avg = np.load(service_models_dir / STYLE / "w_avg.npy")
    free = np.asarray(post(client, "/sample", seed=5, n=3, return_w=True)["w"])
    cut = post(client, "/sample", seed=5, n=3, return_w=True, truncation_psi=0.5, truncation_cutoff=1)
    ws = np.asarray(cut["w"])
    np.testing.assert_allclose(ws[:, 0], w_avg + 0.5 * (free[:, 0] - w_avg), atol=1e-6)
    assert np.array_equal(ws[:, 1:], free[:, 1:])
    assert cut["truncation_psi"] == 0.5 and cut["truncation_cutoff"] == 1


def test_mixing_from_layer_zero_is_the_second_seeds_image(client):
    mixed = post(client, "/sample", seed=1, n=4, mix={"seed": 7, "from_layer": 0})
    assert np.array_equal(samples(mixed), samples(post(client, "/sample", seed=7, n=4)))
    assert mixed["mix_seed"] == 7 and mixed["mix_from_layer"] == 0


def test_mixing_takes_the_coarse_styles_of_one_seed_and_the_fine_of_the_other(client):
    first = np.asarray(post(client, "/sample", seed=1, n=3, labels=0, return_w=True)["w"])
    second = np.asarray(post(client, "/sample", seed=9, n=3, labels=0, return_w=True)["w"])
    mixed = post(client, "/sample", seed=1, n=3, labels=0, return_w=True, mix={"seed": 9, "from_layer": 2})
    ws = np.asarray(mixed["w"])
    assert np.array_equal(ws[:, :2], first[:, :2]) and np.array_equal(ws[:, 2:], second[:, 2:])
    assert not np.array_equal(samples(mixed), samples(post(client, "/sample", seed=1, n=3, labels=0)))


def test_return_w_given_back_as_w_draws_the_same_images(client):
    answer = post(client, "/sample", seed=11, n=3, return_w=True, truncation_psi=0.7)
    ws = answer["w"]
    assert np.asarray(ws).shape == (3, foreign.NUM_WS, foreign.W_DIM)
    assert np.array_equal(samples(post(client, "/sample", w=ws)), samples(answer))
    one_w = np.asarray(ws)[:, 0].tolist()  # rows of w_dim: the same w on every layer
    assert samples(post(client, "/sample", w=one_w)).shape == (3, 3, foreign.SIDE, foreign.SIDE)


def test_the_walk_is_a_lerp_in_w_with_psi(client):
    walk = post(client, "/interpolate", seeds=[3, 4], steps=5, truncation_psi=0.7, labels=1)
    assert walk["method"] == "lerp" and walk["space"] == "w" and walk["truncation_psi"] == 0.7
    end = samples(post(client, "/sample", seed=3, n=1, labels=1, truncation_psi=0.7))[0]
    assert np.array_equal(samples(walk)[0], end)


def test_models_lists_the_w_space(client):
    listed = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert listed[STYLE]["style"] == {"w_dim": foreign.W_DIM, "num_ws": foreign.NUM_WS}
    assert listed[STYLE]["card"]["schema_version"] == 3 and listed[DEFAULT]["style"] is None


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/sample", {"model": DEFAULT, "truncation_psi": 0.5}, "truncation_psi"),
        ("/sample", {"model": DEFAULT, "mix": {"seed": 1, "from_layer": 0}}, "mix"),
        ("/sample", {"model": DEFAULT, "return_w": True}, "return_w"),
        ("/sample", {"model": DEFAULT, "w": [[0.0] * 16]}, "w"),
        ("/interpolate", {"model": DEFAULT, "seeds": [1, 2], "truncation_psi": 0.5}, "truncation_psi"),
        ("/sample", {"model": STYLE, "truncation": 1.0}, "truncation"),
        ("/interpolate", {"model": STYLE, "seeds": [1, 2], "truncation": 1.0}, "truncation"),
        ("/sample", {"model": STYLE, "truncation_cutoff": 2}, "truncation_cutoff"),
        ("/sample", {"model": STYLE, "truncation_psi": 0.5, "truncation_cutoff": 4}, "truncation_cutoff"),
        ("/sample", {"model": STYLE, "mix": {"seed": 1, "from_layer": 3}}, "mix.from_layer"),
        ("/sample", {"model": STYLE, "return_w": True, "format": "npy"}, "return_w"),
        ("/sample", {"model": STYLE, "w": [[0.0] * 5]}, "w"),
        ("/sample", {"model": STYLE, "w": [[0.0] * 16], "seed": 3}, "w"),
        ("/sample", {"model": STYLE, "w": [[0.0] * 16], "n": 2}, "n"),
        ("/sample", {"model": STYLE, "truncation_psi": 0.5, "drs": True}, "drs"),
        ("/sample", {"model": STYLE, "w": [[0.0] * 16], "scores": True}, "labels"),
        ("/sample", {"model": STYLE, "truncation_psi": 3}, "truncation_psi"),
    ],
)
def test_w_space_fields_are_refused_where_they_cannot_apply(client, path, body, field):
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(field), r.text


def test_v2_serves_the_two_graphs_not_a_generator(client):
    r = client.post(f"/v2/models/{STYLE}.generator/infer", json={"inputs": []})
    assert r.status_code == 404 and "mapping, synthesis" in r.json()["error"]
    meta = client.get(f"/v2/models/{STYLE}.synthesis").json()
    assert meta["inputs"][0]["shape"] == [-1, foreign.NUM_WS, foreign.W_DIM]
