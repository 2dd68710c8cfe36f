"""Conditional models over HTTP: `labels` in /sample, /score and /interpolate, their answers (JSON
field, X-Labels header, a png grid one class per row), D(x | c) in every realness, and the 400s that
name `labels`. `tiny-cond` (conftest.py) is a real onnx.helper pair taking int64 `c`, classes
class0..class2."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.core import latents
from service.core.labels import LABEL_STREAM
from tests.service.support import COND, DEFAULT


def npy(response) -> np.ndarray:
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def _sample(client, **body):
    r = client.post("/sample", json={"model": COND, **body})
    assert r.status_code == 200, r.text
    return r


@pytest.mark.parametrize(
    "labels, expected",
    [
        (1, [1, 1, 1, 1]),
        ("class2", [2, 2, 2, 2]),
        ([0, "class1", 2, 0], [0, 1, 2, 0]),
        ("balanced", [0, 1, 2, 0]),
    ],
)
def test_sample_returns_the_classes_asked_for(client, labels, expected):
    body = _sample(client, n=4, seed=5, labels=labels).json()
    assert body["labels"] == expected and body["shape"] == [4, 1, 8, 8]


def test_the_class_changes_the_sample_but_not_the_seeds_latents(client):
    a = np.array(_sample(client, n=3, seed=9, labels=0).json()["samples"])
    b = np.array(_sample(client, n=3, seed=9, labels=1).json()["samples"])
    assert not np.allclose(a, b)
    # The latents are the seed's stream 0 whatever the labels: sending them back gives the same samples.
    z = latents.draw(latents.generator(9), _latent(client), 3)
    again = _sample(client, latents=z.tolist(), labels=1).json()
    assert np.array_equal(np.array(again["samples"]), b)


def _latent(client):
    from models.card import Latent

    card = next(m for m in client.get("/models").json()["models"] if m["name"] == COND)["card"]
    return Latent.model_validate(card["latent"])


def test_without_labels_they_are_drawn_from_the_seed_and_returned(client):
    first = _sample(client, n=32, seed=77).json()
    second = _sample(client, n=32, seed=77).json()
    assert first["labels"] == second["labels"] and first["samples"] == second["samples"]
    expected = latents.generator(77, stream=LABEL_STREAM).integers(0, 3, size=32)
    assert first["labels"] == expected.tolist() and len(set(first["labels"])) == 3
    # The drawn labels are the ones the samples were made with.
    assert _sample(client, n=32, seed=77, labels=first["labels"]).json()["samples"] == first["samples"]


def test_npy_and_png_carry_the_labels_in_a_header(client):
    j = _sample(client, n=5, seed=3, labels="balanced").json()
    r = _sample(client, n=5, seed=3, labels="balanced", format="npy")
    assert r.headers["x-labels"] == "0,1,2,0,1"
    assert np.array_equal(npy(r), np.array(j["samples"], np.float32))
    p = _sample(client, n=5, seed=3, labels=[2, 2, 1, 0, 0], format="png")
    assert p.headers["x-labels"] == "2,2,1,0,0"


def test_a_balanced_png_grid_has_one_class_per_row(client):
    png = _sample(client, n=7, seed=4, labels="balanced", format="png")
    grid = np.asarray(Image.open(io.BytesIO(png.content)))
    # 3 classes -> 3 rows; class 0 has 3 samples (0, 3, 6) -> 3 columns; tiles 8 px with padding 2.
    assert grid.shape[0] == 3 * 8 + 4 * 2 and grid.shape[1] == 3 * 8 + 4 * 2
    x = np.array(_sample(client, n=7, seed=4, labels="balanced").json()["samples"])
    tile = grid[2 + 10 * 1 : 2 + 10 * 1 + 8, 2 + 10 * 2 : 2 + 10 * 2 + 8]  # row 1 (class 1), column 2: empty
    assert tile.max() == 0
    first_of_class_2 = grid[2 + 20 : 2 + 28, 2:10]  # row 2, column 0: sample 2
    assert np.abs(first_of_class_2 / 255.0 - x[2, 0]).max() < 1 / 255 + 1e-6
    # With nrow the caller's layout wins.
    plain = _sample(client, n=7, seed=4, labels="balanced", format="png", nrow=7)
    assert Image.open(io.BytesIO(plain.content)).size[1] == 8 + 2 * 2


def test_scores_and_filters_use_d_of_x_given_c(client):
    body = _sample(client, n=6, seed=2, labels="balanced", scores=True).json()
    x = np.array(body["samples"], np.float32)
    scored = client.post("/score", json={"model": COND, "samples": x.tolist(), "labels": "balanced"}).json()
    assert np.allclose(scored["logit"], body["logit"], atol=1e-6) and scored["labels"] == [0, 1, 2, 0, 1, 2]
    other = client.post("/score", json={"model": COND, "samples": x.tolist(), "labels": 0}).json()
    assert not np.allclose(other["logit"], body["logit"])  # the class enters D
    # A filter keeps the request's slots: every answer has the class of its slot.
    kept = _sample(client, n=6, seed=2, labels=[0, 0, 1, 1, 2, 2], min_realness=0.3, scores=True).json()
    assert kept["labels"] == sorted(kept["labels"]) and kept["accepted"] == len(kept["labels"])
    assert min(kept["realness"]) >= 0.3
    again = client.post("/score", json={"model": COND, "samples": kept["samples"], "labels": kept["labels"]}).json()
    assert np.allclose(again["logit"], kept["logit"], atol=1e-6)
    drs = _sample(client, n=6, seed=2, labels="class1", drs=True).json()
    assert set(drs["labels"]) <= {1}


def test_score_takes_labels_as_a_query_parameter_for_npy_and_png(client):
    x = np.array(_sample(client, n=3, seed=1, labels=[2, 0, 1]).json()["samples"], np.float32)
    buf = io.BytesIO()
    np.save(buf, x)
    r = client.post(
        f"/score?model={COND}&labels=2,0,class1", content=buf.getvalue(), headers={"content-type": "application/x-npy"}
    )
    assert r.status_code == 200, r.text
    j = client.post("/score", json={"model": COND, "samples": x.tolist(), "labels": [2, 0, 1]}).json()
    assert r.json()["labels"] == [2, 0, 1] and np.allclose(r.json()["logit"], j["logit"], atol=1e-6)
    png = io.BytesIO()
    Image.fromarray((x[1, 0] * 255).round().astype(np.uint8)).save(png, format="PNG")  # one 8x8 digit
    r = client.post(f"/score?model={COND}&labels=class2", content=png.getvalue(), headers={"content-type": "image/png"})
    assert r.status_code == 200 and r.json()["labels"] == [2]


def test_interpolate_walks_within_a_class(client):
    body = client.post("/interpolate", json={"model": COND, "seeds": [1, 2], "steps": 4, "labels": "class1"}).json()
    assert body["labels"] == [1, 1, 1, 1]
    drawn = client.post("/interpolate", json={"model": COND, "seeds": [1, 2], "steps": 3}).json()
    assert drawn["labels"] == [latents.generator(1, stream=LABEL_STREAM).integers(0, 3, size=3)[0]] * 3
    r = client.post("/interpolate", json={"model": COND, "seeds": [1, 2], "steps": 3, "labels": [0, 2]})
    assert r.status_code == 400 and r.json()["error"].startswith("labels:") and "one class" in r.json()["error"]
    same = client.post("/interpolate", json={"model": COND, "seeds": [1, 2], "steps": 4, "labels": [1, "class1"]})
    assert same.json()["labels"] == [1, 1, 1, 1]


def test_models_lists_the_classes(client):
    by_name = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert by_name[COND]["classes"] == ["class0", "class1", "class2"]
    assert by_name[COND]["card"]["condition"]["classes"] == 3
    assert by_name[DEFAULT]["classes"] is None


@pytest.mark.parametrize(
    "path, body, problem",
    [
        ("/sample", {"model": DEFAULT, "labels": 1}, "unconditional"),
        ("/sample", {"model": COND, "labels": 3}, "out of range"),
        ("/sample", {"model": COND, "labels": "cat"}, "unknown class name"),
        ("/sample", {"model": COND, "n": 3, "labels": [0, 1]}, "one class per sample: 3, got 2"),
        ("/sample", {"model": COND, "n": 2, "labels": [0, "dog"]}, "unknown class name"),
        ("/sample", {"model": COND, "labels": -1}, ""),
        ("/sample", {"model": COND, "labels": True}, ""),
        ("/sample", {"model": COND, "latents": [[0.0] * 16]}, "give labels with explicit latents"),
        ("/interpolate", {"model": DEFAULT, "labels": 0}, "unconditional"),
        ("/interpolate", {"model": COND, "labels": "balanced"}, "one label"),
        ("/score", {"model": COND, "samples": [[[[0.0] * 8] * 8]]}, "needs the class of each sample"),
        ("/score", {"model": DEFAULT, "samples": [[[[0.0] * 8] * 8]], "labels": 0}, "unconditional"),
        ("/score", {"model": COND, "samples": [[[[0.0] * 8] * 8]], "labels": [0, 1]}, "one class per sample"),
    ],
)
def test_bad_labels_are_a_400_naming_labels(client, path, body, problem):
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("labels"), r.json()
    assert problem in r.json()["error"]


def test_a_bad_labels_query_parameter_is_a_400_naming_labels(client):
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 1, 8, 8), np.float32))
    r = client.post(
        f"/score?model={COND}&labels=0,9", content=buf.getvalue(), headers={"content-type": "application/x-npy"}
    )
    assert r.status_code == 400 and r.json()["error"].startswith("labels.1:") and "out of range" in r.json()["error"]


def test_the_openapi_document_describes_labels(client):
    doc = client.get("/docs.json").json()
    schemas = doc["components"]["schemas"]
    assert "labels" in schemas["ScoreRequest"]["properties"]
    assert "labels" in schemas["SampleResponse"]["properties"] and "labels" in schemas["ScoreResponse"]["properties"]
    assert "X-Labels" in doc["paths"]["/sample"]["post"]["responses"]["200"]["headers"]
    assert any(p["name"] == "labels" for p in doc["paths"]["/score"]["post"]["parameters"])
    sample_body = doc["paths"]["/sample"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    text = str(sample_body) + str(schemas)
    assert "balanced" in text
