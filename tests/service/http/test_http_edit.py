"""/sample's `edit` over HTTP: moves along a model's directions (directions.json, made by
`python -m training directions` in the fixture), in z for a single-graph model, in w for a
style-based one; the same request gives the same bytes; refusals name the field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.core import latents
from tests.service.support import COND, DEFAULT, STYLE


def directions(models_dir, name: str) -> dict[str, np.ndarray]:
    data = json.loads((models_dir / name / "directions.json").read_text())
    return {d["name"]: np.asarray(d["vector"], np.float32) for d in data["directions"]}


def post(client, **body) -> dict:
    r = client.post("/sample", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_models_lists_the_directions(client):
    listed = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert listed[COND]["directions"] == ["pc0", "pc1", "pc2", "pc3"] and listed[DEFAULT]["directions"] == []
    assert listed[COND]["encoder"] is True and listed[DEFAULT]["encoder"] is False


def test_an_edit_in_z_is_the_seeds_latents_moved(client, service_models_dir):
    d = directions(service_models_dir, COND)
    edit = [{"direction": "pc0", "amount": 1.5}, {"direction": "pc2", "amount": -0.5}]
    got = post(client, model=COND, n=5, seed=12, labels=1, edit=edit)
    card = json.loads((service_models_dir / COND / "model.json").read_text())
    lat = card["latent"]
    from models.card import Latent

    z = latents.draw(latents.generator(12), Latent.model_validate(lat), 5)
    offset = np.float32(1.5) * d["pc0"] + np.float32(-0.5) * d["pc2"]  # docs/API.md: the moves summed first
    moved = np.clip(z + offset, lat["low"], lat["high"])
    want = post(client, model=COND, latents=moved.tolist(), labels=1)
    assert np.array_equal(np.asarray(got["samples"]), np.asarray(want["samples"]))
    assert got["edit"] == ["pc0:1.5", "pc2:-0.5"]
    assert got == post(client, model=COND, n=5, seed=12, labels=1, edit=edit)  # the same bytes, again
    assert not np.array_equal(
        np.asarray(got["samples"]), np.asarray(post(client, model=COND, n=5, seed=12, labels=1)["samples"])
    )


def test_an_edit_in_w_moves_every_layers_w(client, service_models_dir):
    d = directions(service_models_dir, STYLE)
    plain = post(client, model=STYLE, n=3, seed=4, labels=0, return_w=True)
    edited = post(client, model=STYLE, n=3, seed=4, labels=0, return_w=True, edit=[{"direction": "pc1", "amount": 2.0}])
    np.testing.assert_allclose(np.asarray(edited["w"]), np.asarray(plain["w"]) + 2.0 * d["pc1"], atol=1e-5)
    again = post(client, model=STYLE, w=edited["w"])
    assert np.array_equal(np.asarray(again["samples"]), np.asarray(edited["samples"]))


@pytest.mark.parametrize(
    "body, field",
    [
        ({"model": DEFAULT, "edit": [{"direction": "pc0", "amount": 1}]}, "edit"),
        ({"model": COND, "edit": [{"direction": "smile", "amount": 1}]}, "edit.0.direction"),
        ({"model": COND, "edit": [{"direction": "pc0", "amount": 1}], "drs": True}, "drs"),
        ({"model": COND, "edit": [{"direction": "pc0", "amount": 1000}]}, "edit"),
    ],
)
def test_bad_edits_are_refused_naming_the_field(client, body, field):
    r = client.post("/sample", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(field), r.text


@pytest.mark.parametrize("model", [COND, STYLE])
def test_a_walk_along_a_direction_passes_through_the_seeds_own_sample(client, service_models_dir, model):
    r = client.post(
        "/interpolate",
        json={"model": model, "seed": 21, "along": {"direction": "pc0", "amounts": [-2, 2]}, "steps": 5, "labels": 1},
    )
    assert r.status_code == 200, r.text
    walk = r.json()
    assert walk["seed"] == 21 and walk["along"] == "pc0" and walk["amounts"] == [-2, 2]
    own = post(client, model=model, n=1, seed=21, labels=1)["samples"][0]
    np.testing.assert_allclose(np.asarray(walk["samples"][2]), np.asarray(own), atol=1e-6)  # amount 0
    ends = np.asarray(walk["samples"])
    assert not np.allclose(ends[0], ends[4])


@pytest.mark.parametrize(
    "body, field",
    [
        ({"model": COND, "seeds": [1, 2], "along": {"direction": "pc0", "amounts": [0, 1]}}, "seeds"),
        ({"model": COND, "seed": 3}, "seed"),
        ({"model": COND, "seed": 3, "along": {"direction": "nope", "amounts": [0, 1]}}, "along.direction"),
        ({"model": COND, "seed": 3, "along": {"direction": "pc0", "amounts": [0]}}, "along"),
    ],
)
def test_bad_walks_along_are_refused_naming_the_field(client, body, field):
    r = client.post("/interpolate", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(field), r.text
