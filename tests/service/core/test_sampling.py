"""Sampling on a real trained model: seeds, D-based rejection (min_realness, DRS), paths, realness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.core import latents, sampling
from service.core.sampling import Filter
from service.runtime.engine import Engine


@pytest.fixture(scope="module")
def digits(service_models_dir: Path):
    return Engine(service_models_dir, device="cpu", default_model="tiny-digits").get("tiny-digits")


def test_a_seed_gives_the_samples_of_its_latents(digits):
    batch = sampling.from_seed(digits, 6, 123, None, False, Filter(), 100)
    z = latents.draw(latents.generator(123), digits.card.latent, 6)
    np.testing.assert_array_equal(batch.samples, digits.generate(z))
    assert batch.drawn == 6 and batch.logits is None


def test_min_realness_keeps_only_passing_samples_within_the_draw_bound(digits):
    probe = sampling.from_seed(digits, 64, 5, None, True, Filter(), 64)
    threshold = float(np.median(sampling.realness(probe.logits)))  # about half pass
    batch = sampling.from_seed(digits, 20, 9, None, True, Filter(min_realness=threshold), 200)
    assert len(batch.samples) == 20 and batch.drawn <= 200
    assert (sampling.realness(batch.logits) >= threshold).all()
    np.testing.assert_allclose(digits.logits(batch.samples), batch.logits, rtol=1e-5, atol=1e-6)
    again = sampling.from_seed(digits, 20, 9, None, True, Filter(min_realness=threshold), 200)
    np.testing.assert_array_equal(batch.samples, again.samples)  # deterministic, filter and all


def test_an_impossible_filter_stops_at_the_bound_and_says_how_many_were_drawn(digits):
    batch = sampling.from_seed(digits, 5, 1, None, False, Filter(min_realness=1.0), 50)
    assert len(batch.samples) == 0 and batch.samples.shape[1:] == (1, 8, 8)
    assert batch.drawn == 50


def test_drs_gamma_moves_acceptance_from_everything_to_nothing(digits):
    everything = sampling.from_seed(digits, 10, 2, None, False, Filter(drs=True, gamma=-50.0), 100)
    assert len(everything.samples) == 10 and everything.drawn == 20  # one round of 2n draws
    nothing = sampling.from_seed(digits, 10, 2, None, False, Filter(drs=True, gamma=50.0), 100)
    assert len(nothing.samples) == 0 and nothing.drawn == 100


def test_drs_prefers_samples_that_d_finds_more_real(digits):
    probe = sampling.from_seed(digits, 400, 3, None, True, Filter(), 400)
    kept = sampling.from_seed(digits, 400, 3, None, True, Filter(drs=True), 400)  # one pass, no refill
    assert 0 < len(kept.samples) < 400
    assert kept.logits.mean() > probe.logits.mean()


def test_explicit_latents_under_a_filter_are_filtered_not_replaced(digits):
    z = latents.draw(latents.generator(4), digits.card.latent, 30)
    batch = sampling.generate(digits, z, with_logits=True)
    threshold = float(np.median(sampling.realness(batch.logits)))
    kept = sampling.filtered(digits, batch, Filter(min_realness=threshold))
    assert 0 < len(kept.samples) < 30 and kept.drawn == 30
    assert (sampling.realness(kept.logits) >= threshold).all()


def test_realness_is_sigmoid_without_overflow():
    logits = np.array([-1000.0, -1.0, 0.0, 2.0, 1000.0], np.float32)
    np.testing.assert_allclose(
        sampling.realness(logits), [0.0, 1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-2.0)), 1.0], rtol=1e-6
    )


def test_a_path_between_seeds_starts_and_ends_at_their_first_latents(digits):
    a, b = sampling.one_latent(digits, 10, None), sampling.one_latent(digits, 11, None)
    for method in ("slerp", "lerp"):
        z = sampling.path(a, b, 7, method)
        assert z.shape == (7, digits.card.latent.dim)
        np.testing.assert_allclose(z[0], a, atol=1e-6)
        np.testing.assert_allclose(z[-1], b, atol=1e-6)
    first = sampling.from_seed(digits, 1, 10, None, False, Filter(), 1).samples[0]
    np.testing.assert_allclose(digits.generate(sampling.path(a, b, 3, "lerp"))[0], first, atol=1e-6)


def test_a_filter_returns_n_when_its_acceptance_allows_within_the_bound(digits):
    probe = sampling.from_seed(digits, 2000, 7, None, True, Filter(), 2000)
    threshold = float(np.quantile(sampling.realness(probe.logits), 0.9))  # about 1 in 10 passes
    batch = sampling.from_seed(digits, 50, 8, None, True, Filter(min_realness=threshold), 50 * 20)
    assert len(batch.samples) == 50 and not batch.exhausted
    assert batch.drawn < 50 * 20  # the rounds follow the acceptance seen, not halvings of what is missing


def test_running_out_of_draws_is_reported(digits):
    batch = sampling.from_seed(digits, 5, 1, None, False, Filter(min_realness=1.0), 50)
    assert batch.exhausted and batch.drawn == 50
    assert not sampling.from_seed(digits, 5, 1, None, False, Filter(drs=True, gamma=-50.0), 50).exhausted


def test_drs_takes_the_gamma_the_card_recommends(digits, tmp_path):
    import json
    import shutil

    folder = tmp_path / digits.name
    shutil.copytree(digits.folder, folder)
    card = json.loads((folder / "model.json").read_text())
    card["realness"]["drs_gamma"] = 50.0  # so strict that nothing passes
    (folder / "model.json").write_text(json.dumps(card))
    strict = Engine(tmp_path, device="cpu", default_model=digits.name).get(digits.name)
    assert Filter(drs=True).resolved(strict).gamma == 50.0
    assert len(sampling.from_seed(strict, 5, 2, None, False, Filter(drs=True), 50).samples) == 0
    assert len(sampling.from_seed(strict, 5, 2, None, False, Filter(drs=True, gamma=-50.0), 50).samples) == 5
    assert Filter(drs=True).resolved(digits).gamma == (digits.card.realness.drs_gamma or 0.0)


@pytest.fixture(scope="module")
def ratio_apart(digits, tmp_path_factory):
    """tiny-digits whose D serves its own logit as realness and keeps the *negated* logit as the
    ratio DRS rejects by (ratio.onnx, as calibrate --drs-ratio training writes it): DRS by it must
    prefer the samples that realness scores lowest."""
    import json
    import shutil

    import onnx
    from onnx import helper

    from models.card import file_entry

    root = tmp_path_factory.mktemp("ratio-apart")
    folder = root / digits.name
    shutil.copytree(digits.folder, folder)
    negated = onnx.load(str(folder / "discriminator.onnx"))
    out = negated.graph.output[0].name
    for node in negated.graph.node:
        node.output[:] = ["raw" if o == out else o for o in node.output]
    negated.graph.node.append(helper.make_node("Neg", ["raw"], [out]))
    onnx.save(negated, str(folder / "ratio.onnx"))
    card = json.loads((folder / "model.json").read_text())
    card["files"]["ratio"] = file_entry(folder / "ratio.onnx").model_dump(mode="json")
    card["onnx"]["ratio"] = card["onnx"]["discriminator"]
    card["realness"].update(
        discriminator="calibrated",
        drs_ratio="training",
        drs_gamma=0.0,
        calibration={
            "method": "test: the ratio is minus the logit",
            "started_from": "training",
            "steps": 1,
            "held_out": "none",
            "auc": 0.5,
            "ece": 0.0,
            "reliability": [],
            "distributions": {},
        },
    )
    x = digits.generate(latents.draw(latents.generator(0), digits.card.latent, 500))
    card["realness"]["max_logit"] = float((-digits.logits(x)).max())
    (folder / "model.json").write_text(json.dumps(card))
    return Engine(root, device="cpu", default_model=digits.name).get(digits.name)  # its warm-up runs all three graphs


class _Counting:
    """A session that counts its runs (wraps the real one: the answers stay onnxruntime's)."""

    def __init__(self, session):
        self.session, self.runs = session, 0

    def run(self, *args, **kwargs):
        self.runs += 1
        return self.session.run(*args, **kwargs)


def test_drs_alone_runs_only_the_ratio_graph_and_realness_only_d(ratio_apart, monkeypatch):
    counted = {role: _Counting(ratio_apart.sessions[role]) for role in ("discriminator", "ratio")}
    monkeypatch.setitem(ratio_apart.sessions, "discriminator", counted["discriminator"])
    monkeypatch.setitem(ratio_apart.sessions, "ratio", counted["ratio"])
    runs = lambda: (counted["discriminator"].runs, counted["ratio"].runs)

    quiet = sampling.from_seed(ratio_apart, 50, 3, None, False, Filter(drs=True), 50)  # drs without scores
    assert runs() == (0, 1) and quiet.logits is None
    sampling.from_seed(ratio_apart, 50, 3, None, True, Filter(drs=True), 50)  # drs with scores: both graphs
    assert runs() == (1, 2)
    sampling.from_seed(ratio_apart, 50, 3, None, True, Filter(min_realness=0.1), 50)  # realness alone: D only
    assert runs() == (2, 2)


def test_openvino_serves_the_same_realness_and_ratio(digits, ratio_apart):
    from service.runtime import backends

    if not backends.openvino_available():
        pytest.skip("OpenVINO is not installed here")
    ov = Engine(ratio_apart.folder.parent, device="cpu", default_model=digits.name, backend="openvino").get(digits.name)
    assert ov.backend == "openvino"
    x = digits.generate(latents.draw(latents.generator(1), digits.card.latent, 40))
    np.testing.assert_allclose(ov.logits(x), ratio_apart.logits(x), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ov.ratio_logits(x), ratio_apart.ratio_logits(x), rtol=1e-4, atol=1e-4)


def test_drs_rejects_by_the_ratio_the_card_keeps_apart_and_realness_stays_the_first_output(digits, ratio_apart):
    x = digits.generate(latents.draw(latents.generator(1), digits.card.latent, 40))
    logit, ratio = ratio_apart.logits(x), ratio_apart.ratio_logits(x)
    np.testing.assert_allclose(logit, digits.logits(x), rtol=1e-6)  # realness (scores, min_realness, /v2) unchanged
    np.testing.assert_allclose(ratio, -logit, rtol=1e-6)
    assert digits.ratio_logits(x) is None and not digits.has_ratio  # no ratio.onnx: DRS rejects by D's logit
    assert ratio_apart.has_ratio

    probe = sampling.from_seed(ratio_apart, 400, 3, None, True, Filter(), 400)
    kept = sampling.from_seed(ratio_apart, 400, 3, None, True, Filter(drs=True), 400)  # one pass, no refill
    assert 0 < len(kept.samples) < 400
    assert kept.logits.mean() < probe.logits.mean()  # by the ratio: the opposite of D's own preference
    np.testing.assert_allclose(kept.logits, digits.logits(kept.samples), rtol=1e-5, atol=1e-6)  # answers carry realness
    quiet = sampling.from_seed(ratio_apart, 400, 3, None, False, Filter(drs=True), 400)  # without scores: the same
    np.testing.assert_array_equal(quiet.samples, kept.samples)
    assert quiet.logits is None  # and no realness run for it

    z = latents.draw(latents.generator(4), digits.card.latent, 400)  # explicit latents: the same rule
    batch = sampling.generate(ratio_apart, z, with_logits=True, with_ratio=True)
    np.testing.assert_allclose(batch.ratio_logits, -batch.logits, rtol=1e-6)
    kept = sampling.filtered(ratio_apart, batch, Filter(drs=True))
    assert 0 < len(kept.samples) < 400 and kept.logits.mean() < batch.logits.mean()
    plain = sampling.generate(ratio_apart, z, with_logits=True)  # scores only: the ratio is not run
    assert plain.ratio_logits is None
    again = sampling.filtered(ratio_apart, plain, Filter(drs=True))  # and filtered fetches it when asked
    np.testing.assert_array_equal(again.samples, kept.samples)
