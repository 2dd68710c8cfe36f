"""Packed tutorial GANs served by a real `python -m service serve` over real HTTP: samples in
json, npy and png (pixels checked against the value range), G's graph against the torch G, PNG
input to /score in [-1, 1], and a generator-only model's realness refused everywhere."""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from tests.servers import start_server

sys.path.insert(0, str(Path(__file__).parent))

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_single_thread")]
PAD = 2  # service/core/encoding.py GRID_PADDING


@pytest.fixture(scope="module")
def http(packed, tmp_path_factory):
    root = tmp_path_factory.mktemp("pack-serve")
    env = {
        "GANSERVE_DEFAULT_MODEL": "tut-dcgan",
        "GANSERVE_DEVICE": "cpu",
        "GANSERVE_THREADS": "2",
        "BENTOML_HOME": str(root / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    with start_server(packed.models, env, root) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield client


def _sample(http, fmt: str, **body) -> httpx.Response:
    r = http.post("/sample", json={**body, "format": fmt})
    assert r.status_code == 200, r.text
    return r


def _tiles(png: bytes, n: int, nrow: int, shape: list[int]) -> np.ndarray:
    """The grid's tiles back as (n, C, H, W) uint8."""
    c, h, w = shape
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB" if c == 3 else "L"))
    image = image.reshape(image.shape[0], image.shape[1], c)
    rows = math.ceil(n / nrow)
    assert image.shape[:2] == (rows * (h + PAD) + PAD, nrow * (w + PAD) + PAD)
    out = []
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = PAD + r * (h + PAD), PAD + col * (w + PAD)
        out.append(image[y : y + h, x : x + w].transpose(2, 0, 1))
    return np.stack(out)


@pytest.mark.parametrize("name, value_range", [("tut-dcgan", (-1.0, 1.0)), ("tut-gonly", (0.0, 1.0))])
def test_json_npy_and_png_agree_and_png_maps_the_value_range(http, name, value_range) -> None:
    body = {"model": name, "n": 6, "seed": 11}
    js = _sample(http, "json", **body).json()
    x = np.load(io.BytesIO(_sample(http, "npy", **body).content))  # (6, C, H, W)
    assert list(x.shape) == js["shape"] and x.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(js["samples"], np.float32), x)
    lo, hi = value_range
    assert x.min() >= lo - 1e-6 and x.max() <= hi + 1e-6 and x.max() - x.min() > 0.5 * (hi - lo)
    png = _sample(http, "png", **body, nrow=3).content
    want = np.clip(np.rint((x.astype(np.float64) - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
    got = _tiles(png, 6, 3, list(x.shape[1:]))
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # float32 rounding at .5 only
    assert (got == 0).any() or (got < 40).any()  # the range's low end really reaches dark pixels
    assert (got > 215).any()


def test_dcgan_samples_are_the_tutorial_g_of_the_given_latents(http, packed) -> None:
    z = np.random.default_rng(5).standard_normal((3, 100)).astype(np.float32)
    x = np.load(io.BytesIO(_sample(http, "npy", model="tut-dcgan", latents=z.tolist()).content))
    with torch.no_grad():
        want = packed.generators["tut-dcgan"](torch.from_numpy(z).view(3, 100, 1, 1)).numpy()  # DCGAN's (100, 1, 1)
    np.testing.assert_allclose(x, want, atol=1e-4)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_png_sent_to_score_is_read_in_minus_one_to_one(http, packed) -> None:
    grid = _sample(http, "png", model="tut-dcgan", n=1, seed=2).content
    tile = _tiles(grid, 1, 1, [3, 64, 64])[0].transpose(1, 2, 0)  # (64, 64, 3): the one sample, unpadded
    r = http.post("/score?model=tut-dcgan", content=_png(tile), headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    pixels = tile.astype(np.float64)
    x = torch.from_numpy((-1.0 + pixels * (2.0 / 255.0)).transpose(2, 0, 1)[None].astype(np.float32))
    with torch.no_grad():
        p = packed.discriminators["tut-dcgan"](x).double()  # the tutorial D's probability
    assert abs(r.json()["realness"][0] - float(p[0])) < 1e-4


def test_models_lists_the_packed_models_and_which_have_realness(http) -> None:
    listed = {m["name"]: m for m in http.get("/models").json()["models"]}
    assert {n: (m["status"], m["realness"]) for n, m in listed.items()} == {
        "tut-dcgan": ("ready", True),
        "tut-cgan": ("ready", True),
        "tut-gonly": ("ready", False),
    }
    assert listed["tut-cgan"]["card"]["condition"]["names"] == ["red", "green", "blue"]
    assert listed["tut-dcgan"]["card"]["latent"]["shape"] == [100, 1, 1]


@pytest.mark.parametrize(
    "path, body",
    [
        ("/sample", {"n": 2, "scores": True}),
        ("/sample", {"n": 300, "scores": True}),  # the worker-thread path as well as the event loop's
        ("/sample", {"n": 2, "min_realness": 0.5}),
        ("/sample", {"n": 2, "drs": True}),
        ("/interpolate", {"steps": 3, "scores": True}),
        ("/score", {"samples": np.zeros((1, 3, 6, 6)).tolist()}),
    ],
)
def test_a_generator_only_model_refuses_realness_with_a_400_naming_model(http, path, body) -> None:
    r = http.post(path, json={**body, "model": "tut-gonly"})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("model: model 'tut-gonly' has no discriminator"), r.text


def test_a_generator_only_model_serves_samples_and_walks(http) -> None:
    r = http.post("/interpolate", json={"model": "tut-gonly", "steps": 4, "seeds": [1, 2], "format": "npy"})
    assert r.status_code == 200, r.text
    assert np.load(io.BytesIO(r.content)).shape == (4, 3, 6, 6)
    png = http.post(
        "/score?model=tut-gonly", content=_png(np.zeros((6, 6, 3), np.uint8)), headers={"content-type": "image/png"}
    )
    assert png.status_code == 400 and "has no discriminator" in png.json()["error"]


def test_the_dataset_cli_refuses_realness_of_a_generator_only_model(packed, tmp_path, capsys) -> None:
    from service.__main__ import main

    code = main(
        [
            "generate",
            "--model-dir",
            str(packed.models / "tut-gonly"),
            "--samples",
            "10",
            "--out",
            str(tmp_path / "data"),
            "--labels",
            "--quiet",
        ]
    )
    assert code == 2
    assert "has no discriminator" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
    assert (
        main(
            [
                "generate",
                "--model-dir",
                str(packed.models / "tut-gonly"),
                "--samples",
                "10",
                "--out",
                str(tmp_path / "data"),
                "--quiet",
            ]
        )
        == 0
    )
