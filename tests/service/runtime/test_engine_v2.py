"""The engine on card version 2 folders: a conditional pair taking int64 classes, a generator-only
model, and a generator whose z is declared as (dim, 1, 1) as DCGAN's is. Real onnx.helper graphs
through real onnxruntime (tests/service/model_factory.py)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service.core import latents
from service.runtime.engine import Engine
from service.runtime.model import NoDiscriminator
from tests.service.model_factory import make_model


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = tmp_path_factory.mktemp("v2models")
    make_model(root, "cond", classes=3, shape=(1, 4, 4), z_dim=6)
    make_model(root, "gonly", discriminator=False, shape=(3, 4, 4), z_dim=5)
    make_model(root, "dcgan-like", latent_shape=[5, 1, 1], shape=(3, 4, 4), z_dim=5, distribution="normal")
    return Engine(root, device="cpu", default_model="cond", intra_op_threads=1)


def test_all_three_load(engine: Engine) -> None:
    assert sorted(engine.models) == ["cond", "dcgan-like", "gonly"] and not engine.unavailable
    assert engine.get("cond").conditional and not engine.get("gonly").conditional
    assert not engine.get("gonly").has_discriminator and engine.get("cond").has_discriminator


def test_the_class_changes_the_sample_and_batching_keeps_each_rows_class(engine: Engine) -> None:
    model = engine.get("cond")
    z = latents.draw(latents.generator(1), model.card.latent, 6)
    c = np.array([0, 1, 2, 2, 1, 0])
    together = model.generate(z, c)
    alone = np.concatenate([model.generate_inline(z[i : i + 1], c[i : i + 1]) for i in range(6)])
    np.testing.assert_allclose(together, alone, rtol=1e-6, atol=1e-6)
    # same latent, different class: a different sample (the class really reaches the graph)
    assert not np.allclose(model.generate(z[:1], np.array([0])), model.generate(z[:1], np.array([1])))
    logits = model.logits(together, c)
    assert logits.shape == (6,)
    assert not np.allclose(model.logits(together[:1], np.array([0])), model.logits(together[:1], np.array([1])))


def test_async_runs_give_the_same_answers(engine: Engine) -> None:
    model = engine.get("cond")
    z = latents.draw(latents.generator(2), model.card.latent, 4)
    c = np.array([2, 0, 1, 1])

    async def both():
        return await asyncio.gather(model.generate_async(z[:2], c[:2]), model.generate_async(z[2:], c[2:]))

    a, b = asyncio.run(both())
    np.testing.assert_allclose(np.concatenate([a, b]), model.generate(z, c), rtol=1e-6, atol=1e-6)


def test_concurrent_callers_with_different_classes(engine: Engine) -> None:
    model = engine.get("cond")
    z = latents.draw(latents.generator(3), model.card.latent, 64)
    c = np.arange(64) % 3
    want = model.generate_inline(z, c)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: model.generate(z[i : i + 8], c[i : i + 8]), range(0, 64, 8)))
    np.testing.assert_allclose(np.concatenate(got), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "c, problem",
    [
        (None, "is conditional: it needs 2 class indices"),
        (np.array([0]), "is conditional: it needs 2 class indices"),
        (np.array([0, 3]), r"class indices must be integers in \[0, 3\)"),
        (np.array([-1, 0]), r"class indices must be integers in \[0, 3\)"),
        (np.array([0.0, 1.0]), "must be integers"),
    ],
)
def test_bad_classes_refused(engine: Engine, c, problem: str) -> None:
    model = engine.get("cond")
    z = latents.draw(latents.generator(0), model.card.latent, 2)
    with pytest.raises(ValueError, match=problem):
        model.generate(z, c)


def test_unconditional_model_refuses_classes(engine: Engine) -> None:
    model = engine.get("gonly")
    z = latents.draw(latents.generator(0), model.card.latent, 2)
    with pytest.raises(ValueError, match="is not conditional"):
        model.generate(z, np.array([0, 1]))


def test_generator_only_model_samples_but_has_no_realness(engine: Engine) -> None:
    model = engine.get("gonly")
    z = latents.draw(latents.generator(0), model.card.latent, 3)
    x = model.generate(z)
    assert x.shape == (3, 3, 4, 4) and np.isfinite(x).all()
    for call in (model.logits, model.logits_inline):
        with pytest.raises(NoDiscriminator, match="'gonly' has no discriminator"):
            call(x)
    with pytest.raises(NoDiscriminator):
        asyncio.run(model.logits_async(x))


def test_declared_latent_shape_reaches_the_graph(engine: Engine) -> None:
    model = engine.get("dcgan-like")
    assert model.sessions["generator"].get_inputs()[0].shape[1:] == [5, 1, 1]
    z = latents.draw(latents.generator(4), model.card.latent, 7)  # drawn flat, (7, 5)
    assert z.shape == (7, 5)
    x = model.generate(z)
    assert x.shape == (7, 3, 4, 4)
    np.testing.assert_allclose(x, model.generate_inline(z), rtol=1e-6, atol=1e-6)


def test_only_fast_models_may_run_on_the_event_loop(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A lone client's small request runs on the loop only for a model whose warm-up runs were
    fast: a slow graph there would block the loop, and the request timeout with it."""
    root = tmp_path_factory.mktemp("inline")
    make_model(root, "quick")
    make_model(root, "slow", slow_loop=200_000)  # a Loop of that many trips: tens of ms a run
    engine = Engine(root, device="cpu", default_model="quick", intra_op_threads=1)
    assert engine.get("quick").inline_ok and not engine.get("slow").inline_ok
