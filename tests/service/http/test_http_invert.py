"""POST /invert over HTTP: E's latents and G's reconstructions of images sent as JSON, .npy and
PNG, the refine search, and every refusal naming its field. The encoders are real (trained in the
fixture on each folder's own (G(z), z) pairs): tiny-cond inverts into z, tiny-style into w."""

from __future__ import annotations

import io
import json

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from tests.service.support import COND, DEFAULT, STYLE


def sample(client, model: str, n: int, seed: int, label: int = 0) -> np.ndarray:
    r = client.post("/sample", json={"model": model, "n": n, "seed": seed, "labels": label})
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["samples"], np.float32)


def invert(client, **body) -> dict:
    r = client.post("/invert", json=body)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("model, space", [(COND, "z"), (STYLE, "w")])
def test_the_answer_is_the_encoders_latent_and_gs_reconstruction(client, service_models_dir, model, space):
    x = sample(client, model, 6, seed=3, label=1)
    got = invert(client, model=model, samples=x.tolist(), labels=1)
    assert got["space"] == space and got["n"] == 6 and got["labels"] == [1] * 6
    encoder = ort.InferenceSession(str(service_models_dir / model / "encoder.onnx"), providers=["CPUExecutionProvider"])
    want = encoder.run(None, {"x": x, "c": np.ones(6, np.int64)})[0]
    latent = json.loads((service_models_dir / model / "model.json").read_text())["latent"]
    if latent["distribution"] == "uniform":  # a guess stays within the bounds G was trained on
        want = np.clip(want, latent["low"], latent["high"])
    np.testing.assert_allclose(np.asarray(got["latents"], np.float32), want, atol=1e-5)
    key = "latents" if space == "z" else "w"
    redrawn = client.post("/sample", json={"model": model, key: got["latents"], "labels": 1})
    assert redrawn.status_code == 200, redrawn.text
    recon = np.asarray(got["reconstructions"], np.float32)
    assert np.array_equal(recon, np.asarray(redrawn.json()["samples"], np.float32))
    errors = ((recon - x) ** 2).reshape(6, -1).mean(1)
    np.testing.assert_allclose(got["error"], errors, rtol=1e-4)


def test_refine_never_does_worse_than_the_encoder_and_is_deterministic(client):
    x = sample(client, STYLE, 4, seed=8)
    plain = invert(client, model=STYLE, samples=x.tolist(), labels=0)
    refined = invert(client, model=STYLE, samples=x.tolist(), labels=0, refine=48, seed=5)
    again = invert(client, model=STYLE, samples=x.tolist(), labels=0, refine=48, seed=5)
    assert refined == again
    assert refined["refine"]["candidates"] == 48
    np.testing.assert_allclose(refined["refine"]["error_of_encoder"], plain["error"], rtol=1e-5)
    assert all(r <= e + 1e-9 for r, e in zip(refined["error"], plain["error"]))
    assert sum(refined["error"]) < sum(plain["error"])  # the search found better latents


def test_npy_and_png_bodies_answer_reconstructions(client):
    x = sample(client, COND, 3, seed=4, label=2)
    buffer = io.BytesIO()
    np.save(buffer, x)
    r = client.post(
        f"/invert?model={COND}&labels=2&format=npy",
        content=buffer.getvalue(),
        headers={"content-type": "application/x-npy"},
    )
    assert r.status_code == 200, r.text
    recon = np.load(io.BytesIO(r.content), allow_pickle=False)
    as_json = invert(client, model=COND, samples=x.tolist(), labels=2)
    assert np.array_equal(recon, np.asarray(as_json["reconstructions"], np.float32))
    assert len(r.headers["x-error"].split(",")) == 3
    png = io.BytesIO()
    Image.fromarray((x[0, 0] * 255).round().astype(np.uint8)).save(png, format="PNG")
    r = client.post(
        f"/invert?model={COND}&labels=2&format=png", content=png.getvalue(), headers={"content-type": "image/png"}
    )
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")


def test_scores_judge_the_reconstructions(client):
    x = sample(client, COND, 2, seed=6)
    got = invert(client, model=COND, samples=x.tolist(), labels=0, scores=True)
    score = client.post("/score", json={"model": COND, "samples": got["reconstructions"], "labels": 0}).json()
    np.testing.assert_allclose(got["logit"], score["logit"], rtol=1e-6)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"model": DEFAULT, "samples": [[[[0.0] * 8] * 8]]}, "model"),  # no encoder
        ({"model": COND, "samples": [[[[0.0] * 8] * 8]]}, "labels"),  # a conditional model needs them
        ({"model": COND, "samples": [[[0.0] * 8] * 8], "labels": 0}, "samples"),  # the wrong shape
        ({"model": COND, "samples": [[[[0.0] * 8] * 8]], "labels": 0, "refine": 1000}, "refine"),
        ({"model": COND, "samples": [[[[0.0] * 8] * 8]], "labels": 0, "format": "npy", "scores": True}, "scores"),
    ],
)
def test_bad_inversions_are_refused_naming_the_field(client, body, field):
    r = client.post("/invert", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(field), r.text


def test_a_bad_png_is_refused(client):
    r = client.post(
        f"/invert?model={COND}&labels=0", content=b"\x89PNG not really", headers={"content-type": "image/png"}
    )
    assert r.status_code == 400 and r.json()["error"].startswith("body"), r.text


def test_v2_serves_the_encoder_as_a_graph(client):
    x = sample(client, COND, 2, seed=9, label=2)
    inputs = [
        {"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()},
        {"name": "c", "shape": [2], "datatype": "INT64", "data": [2, 2]},
    ]
    r = client.post(f"/v2/models/{COND}.encoder/infer", json={"inputs": inputs})
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    got = np.asarray(out["data"], np.float32).reshape(out["shape"])
    raw = invert(client, model=COND, samples=x.tolist(), labels=2)
    latent = json.loads(client.get("/models").text)  # the uniform bounds /invert clips to
    card = next(m["card"] for m in latent["models"] if m["name"] == COND)
    np.testing.assert_allclose(np.clip(got, card["latent"]["low"], card["latent"]["high"]), raw["latents"], atol=1e-6)


def test_the_search_runs_in_bounded_batches_with_the_same_answers(client, monkeypatch):
    """Images are searched in chunks (inversion.MAX_BATCH candidates at once): a small bound gives
    the answer of chunks seeded seed, seed + chunk start; the largest seed wraps, never a 500."""
    from service.core import inversion

    x = sample(client, STYLE, 3, seed=2)
    body = {"model": STYLE, "samples": x.tolist(), "labels": 0, "refine": 16, "seed": 2**64 - 1}
    whole = invert(client, **body)
    monkeypatch.setattr(inversion, "MAX_BATCH", 16)  # one image per chunk
    chunked = invert(client, **body)
    assert chunked["refine"] == whole["refine"] and len(chunked["error"]) == 3
    assert chunked["error"][0] == whole["error"][0]  # the first chunk is seeded as the whole was
    assert all(e <= f + 1e-9 for e, f in zip(chunked["error"], chunked["refine"]["error_of_encoder"]))


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_png_of_another_size_is_refused_unless_resize_is_asked_and_then_said(client):
    """8x8 models: a 16x16 PNG is refused naming the body and both sizes; with ?resize=true it is
    resized (Lanczos, as Pillow does it) and inverted, and the answer says what was resized."""
    x = sample(client, COND, 1, seed=11, label=2)
    small = Image.fromarray((x[0, 0] * 255).round().astype(np.uint8))
    big = small.resize((16, 12), Image.Resampling.NEAREST)
    query = f"/invert?model={COND}&labels=2"
    r = client.post(query, content=_png(np.asarray(big)), headers={"content-type": "image/png"})
    assert r.status_code == 400 and r.json()["error"].startswith("body"), r.text
    assert "16x12" in r.json()["error"] and "8x8" in r.json()["error"]
    r = client.post(f"{query}&resize=true", content=_png(np.asarray(big)), headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["resized"] == ["body: 16x12 -> 8x8 (Lanczos)"]
    want = np.asarray(big.resize((8, 8), Image.Resampling.LANCZOS), np.float32)[None, None] / 255.0
    direct = invert(client, model=COND, samples=want.tolist(), labels=2)  # the resized image itself
    assert "resized" not in direct
    np.testing.assert_allclose(got["latents"], direct["latents"], atol=1e-6)
    np.testing.assert_allclose(got["error"], direct["error"], rtol=1e-5)
    # The png answer says it in a header; an image of the right size is not listed.
    files = [
        ("a", ("a.png", _png(np.asarray(big)), "image/png")),
        ("b", ("b.png", _png(np.asarray(small)), "image/png")),
    ]
    r = client.post(f"{query}&resize=1&format=png", files=files)
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG"), r.text
    assert r.headers["x-resized"] == "a[0]: 16x12 -> 8x8 (Lanczos)"
    assert len(r.headers["x-error"].split(",")) == 2


@pytest.mark.parametrize(
    "query, content_type, body, field",
    [
        (
            "resize=true",
            "application/json",
            json.dumps({"model": COND, "samples": [[[[0.0] * 8] * 8]], "labels": 0}),
            "resize",
        ),
        ("resize=true&labels=0", "application/x-npy", None, "resize"),  # arrays are never resized
        ("resize=maybe&labels=0", "image/png", None, "resize"),
    ],
)
def test_resize_is_for_png_images_only(client, query, content_type, body, field):
    if body is None:
        buffer = io.BytesIO()
        np.save(buffer, np.zeros((1, 1, 8, 8), np.float32))
        body = buffer.getvalue() if content_type != "image/png" else _png(np.zeros((8, 8), np.uint8))
    r = client.post(f"/invert?model={COND}&{query}", content=body, headers={"content-type": content_type})
    assert r.status_code == 400 and r.json()["error"].startswith(field), r.text
