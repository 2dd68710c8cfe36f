"""Calibrating a conditional model's D(x, c) with G(z, c) frozen (training/calibrate.py), on tiny
really trained and exported ring8-cond models (both D heads), through real onnxruntime graphs and
the service's own engine."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from models.card import load_model_folder, read_card, sha256_of
from training.calibrate import CalibrationConfig, calibrate_model
from training.evaluation.samplers import balanced_labels, onnx_sampler
from training.export import export_run
from training.export_parts import export_discriminator
from training.networks import LatentConfig, NetworkConfig, build_discriminator
from training.onnx_io import cpu_session, run_batched
from training.presets import resolve
from training.retarget import retarget
from training.served_d import (
    CalibrationError,
    LogitShift,
    fold_target,
    has_intercept,
    logits_of,
    platt_fit,
    with_platt_shift,
)
from training.trainer import train

pytestmark = pytest.mark.usefixtures("torch_single_thread")
TINY = ["network.g_hidden=[32,32]", "network.d_hidden=[32]", "network.latent.dim=4"]
FAST = CalibrationConfig(steps=400, batch=128, lr=2e-3, eval_every=50, patience=4)


@pytest.fixture(scope="module")
def cond_models(tmp_path_factory, torch_single_thread):
    """ring8-cond trained 20 steps and exported, with each D head: {head: folder} (read-only)."""
    root = tmp_path_factory.mktemp("cal-cond")
    out = {}
    for head in ("concat", "projection"):
        run = train(
            resolve("ring8-cond", TINY + [f"network.d_condition={head}"]),
            root / "runs" / head,
            max_steps=20,
            progress=False,
        )
        out[head] = export_run(run, name=f"ring8-cond-{head}", out_dir=root / "models", progress=False)
    return out


@pytest.mark.parametrize("head", ["concat", "projection"])
def test_a_conditional_d_calibrates_from_its_own_weights_and_keeps_g_and_the_signature(cond_models, head, tmp_path):
    source = cond_models[head]
    folder = tmp_path / source.name
    shutil.copytree(source, folder)
    before = read_card(folder)
    report = calibrate_model(folder, FAST, progress=False)
    card, paths = load_model_folder(folder)  # sha256 and sizes verified against the new card

    assert report.started_from == "training"  # rebuilt from discriminator.onnx, parity checked with c fed
    assert report.after["auc"] > report.before["auc"] + 0.05, (report.before, report.after)
    assert (
        sha256_of(folder / "generator.onnx") == sha256_of(source / "generator.onnx") == before.files["generator"].sha256
    )
    assert card.files["discriminator"].sha256 != before.files["discriminator"].sha256
    assert card.onnx.discriminator == before.onnx.discriminator  # still D(x, c), the card's signature
    session = cpu_session(paths["discriminator"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [("x", "tensor(float)"), ("c", "tensor(int64)")]
    r = card.realness
    assert r.discriminator == "calibrated" and "conditional" in r.calibration.held_out
    assert sum(b.count for b in r.calibration.reliability) == 2 * r.calibration.distributions["real"].n
    assert r.calibration.distributions["noise"].n == r.calibration.distributions["real"].n

    # The recommended gamma and max_logit come from G's samples under their classes (in turn).
    c = balanced_labels(10_000, card.condition.classes)
    x = onnx_sampler(folder, card, threads=1)(10_000, 7003, c)
    logits = run_batched(session, x, c=c).ravel()
    assert r.max_logit == pytest.approx(float(logits.max()), abs=1e-5)
    from training.evaluation import calibration as cal

    assert r.calibration.acceptance == pytest.approx(cal.acceptance(logits, r.max_logit, r.drs_gamma), abs=1e-6)

    # The service loads the calibrated folder and scores with D(x | c); the class matters.
    from service.runtime.engine import Engine

    model = Engine.from_folder(folder, device="cpu").get(folder.name)
    served = model.logits(x[:64], c[:64]).ravel()
    np.testing.assert_allclose(served, logits[:64], atol=1e-5)
    other = model.logits(x[:64], (c[:64] + 1) % card.condition.classes).ravel()
    assert np.abs(other - served).max() > 1e-3


def test_retarget_feeds_the_class(cond_models, tmp_path):
    folder = tmp_path / cond_models["projection"].name
    shutil.copytree(cond_models["projection"], folder)
    calibrate_model(folder, CalibrationConfig(steps=100, batch=64, eval_every=50, lr=1e-3), progress=False)
    before = read_card(folder)
    gamma, accept = retarget(folder, 0.5)
    after, _ = load_model_folder(folder)
    assert after.files == before.files and after.realness.drs_gamma == gamma and after.realness.target_acceptance == 0.5
    assert after.realness.calibration.acceptance == accept


def test_the_platt_fit_scales_a_projection_d_s_whole_logit():
    # logit = psi(h) + <e_c, h>: folding a * logit + b must scale the class term too.
    cfg = NetworkConfig(
        family="mlp",
        sample_shape=(2,),
        classes=3,
        d_condition="projection",
        g_hidden=(8,),
        d_hidden=(8,),
        d_pieces=1,
        latent=LatentConfig(dim=2),
    )
    torch.manual_seed(0)
    d = build_discriminator(cfg).eval()
    with torch.no_grad():
        d.embed.weight.normal_()  # a class term that matters
    rng = np.random.default_rng(0)
    real = (rng.normal(1.0, 1.0, (400, 2)).astype(np.float32), rng.integers(3, size=400))
    fake = (rng.normal(-1.0, 1.0, (400, 2)).astype(np.float32), rng.integers(3, size=400))
    x, c = rng.normal(0, 2, (50, 2)).astype(np.float32), rng.integers(3, size=50)
    before = logits_of(d, x, c)
    a, b = platt_fit(d, real, fake)
    assert (a, b) != (1.0, 0.0)
    np.testing.assert_allclose(logits_of(d, x, c), a * before + b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("condition", [None, "concat", "projection"])
def test_a_dcgan_d_takes_the_whole_platt_fit_though_its_last_convolution_has_no_bias(condition):
    # The scale folds into the last convolution (and a projection's embedding); the shift, with no
    # bias to go into, is added after it: the logit is exactly a * the old one + b, and the exported
    # graph keeps its signature.
    cfg = NetworkConfig(
        family="dcgan",
        sample_shape=(1, 32, 32),
        classes=3 if condition else 0,
        d_condition=condition or "concat",
        g_width=8,
        d_width=8,
        latent=LatentConfig(dim=8, distribution="normal"),
    )
    torch.manual_seed(0)
    d = build_discriminator(cfg).eval()
    assert not has_intercept(d)
    if condition == "projection":
        with torch.no_grad():
            d.embed.weight.normal_(0, 0.1)  # a class term that matters
    rng = np.random.default_rng(0)
    c = (lambda k: rng.integers(3, size=k)) if condition else (lambda k: None)
    # "real": the inputs D already scores higher, a fifth of them swapped (not separable), and
    # twice as many fakes: the fit keeps the ordering (a > 0), scales D's tiny untrained logits up,
    # and shifts them down (b < 0) for the 1:2 prior
    pool, pool_c = rng.uniform(0, 1, (400, 1, 32, 32)).astype(np.float32), c(400)
    top = logits_of(d, pool, pool_c) > np.median(logits_of(d, pool, pool_c))
    top ^= rng.random(400) < 0.2
    real = (pool[top][:100], None if pool_c is None else pool_c[top][:100])
    fake = (pool[~top], None if pool_c is None else pool_c[~top])
    x, cx = rng.uniform(0, 1, (20, 1, 32, 32)).astype(np.float32), c(20)
    before = logits_of(d, x, cx)
    a, b = platt_fit(d, real, fake)
    assert a > 0 and a != 1.0 and b != 0.0
    served = with_platt_shift(d, b)
    assert isinstance(served, LogitShift)
    np.testing.assert_allclose(logits_of(served, x, cx), a * before + b, rtol=1e-4, atol=1e-5)
    proto = export_discriminator(served, torch.from_numpy(x[:2]), None if cx is None else torch.from_numpy(cx[:2]))
    inputs = [i.name for i in proto.graph.input]
    assert inputs == (["x", "c"] if condition else ["x"]) and [o.name for o in proto.graph.output] == ["logit"]


def test_a_d_whose_last_layer_makes_more_than_one_output_is_refused_by_name():
    d = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    with pytest.raises(CalibrationError, match="no-platt"):
        fold_target(d)
