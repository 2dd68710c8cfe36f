"""Calibrating a tiny exported model's D with G frozen (training/calibrate.py), on real graphs."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from models.card import SCHEMA_VERSION, ModelCard, load_model_folder, read_card, sha256_of, write_card
from training.calibrate import CalibrationConfig, calibrate_model
from training.commands import calibrate as calibrate_cmd
from training.config import TrainConfig
from training.evaluation import calibration as cal
from training.onnx_io import cpu_session, run_batched
from training.retarget import retarget
from training.served_d import CalibrationError, load_discriminator

pytestmark = pytest.mark.usefixtures("torch_single_thread")
FAST = CalibrationConfig(steps=400, batch=128, lr=2e-3, eval_every=50, patience=4)


def test_calibration_raises_held_out_auc_and_leaves_the_generator_byte_identical(tiny_model_copy):
    folder = tiny_model_copy("tiny-ring")
    before = read_card(folder)
    g_bytes = (folder / "generator.onnx").read_bytes()
    report = calibrate_model(folder, FAST, progress=False)
    card, _ = load_model_folder(folder)  # sha256 and sizes verified against the new card

    assert (folder / "generator.onnx").read_bytes() == g_bytes
    assert card.files["generator"] == before.files["generator"]
    assert card.files["discriminator"].sha256 != before.files["discriminator"].sha256
    assert report.started_from == "training"  # the shipped D's weights mapped onto the torch D
    assert report.after["auc"] > report.before["auc"] + 0.05, (report.before, report.after)
    r = card.realness
    assert r.discriminator == "calibrated" and r.calibration.started_from_sha256 == before.files["discriminator"].sha256
    assert r.calibration.auc == pytest.approx(report.after["auc"]) and r.target_acceptance == FAST.target_acceptance
    assert sum(b.count for b in r.calibration.reliability) == 2 * r.calibration.distributions["real"].n
    assert r.drs_gamma == pytest.approx(report.gamma) and r.calibration.acceptance == pytest.approx(report.acceptance)
    assert _gamma_fits(r.drs_gamma, r.calibration.acceptance, FAST.target_acceptance)


def _gamma_fits(gamma: float, acceptance: float, target: float) -> bool:
    """Exact DRS (gamma 0) when it keeps at least the target; else loosened to the target, as far
    as the API's range allows (a 20-step G has so few good samples that D may reject nearly all)."""
    if gamma == 0.0:
        return acceptance >= target - 0.01
    return gamma == -50.0 or (gamma < 0 and acceptance == pytest.approx(target, abs=0.01))


def test_retarget_changes_only_gamma_and_the_card(tiny_model_copy):
    folder = tiny_model_copy("tiny-digits")
    calibrate_model(folder, CalibrationConfig(steps=100, batch=64, eval_every=50, lr=1e-4), progress=False)
    before = read_card(folder)
    gamma, accept = retarget(folder, 0.5)
    after, _ = load_model_folder(folder)
    assert after.files == before.files and after.realness.target_acceptance == 0.5
    assert after.realness.drs_gamma == gamma and after.realness.calibration.acceptance == accept
    assert _gamma_fits(gamma, accept, 0.5)


def test_the_shipped_d_is_rebuilt_exactly_from_its_onnx_initializers(tiny_models_dir):
    folder = tiny_models_dir / "tiny-digits"
    card = read_card(folder)
    d = load_discriminator(folder / "discriminator.onnx", TrainConfig.from_dict(card.training.config).network)
    x = np.random.default_rng(0).uniform(0, 1, (33, 1, 8, 8)).astype(np.float32)
    import torch

    with torch.no_grad():
        ours = d(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, run_batched(cpu_session(folder / "discriminator.onnx"), x), atol=1e-5)


def test_calibrating_into_an_existing_other_folder_is_refused(tiny_model_copy):
    folder = tiny_model_copy("tiny-ring")
    with pytest.raises(CalibrationError, match="already exists"):
        calibrate_model(folder, FAST, out=folder.parent, progress=False)
    with pytest.raises(CalibrationError, match="target_acceptance"):
        CalibrationConfig(target_acceptance=0.0)


def test_the_command_writes_a_new_folder_and_reports(tiny_model_copy, capsys):
    folder = tiny_model_copy("tiny-ring")
    out = folder.parent / "tiny-ring-cal"
    parser = argparse.ArgumentParser()
    calibrate_cmd.add_arguments(parser)
    args = parser.parse_args(
        [
            str(folder),
            "--out",
            str(out),
            "--steps",
            "100",
            "--eval-every",
            "50",
            "--quiet",
            "--target-acceptance",
            "0.5",
        ]
    )
    assert calibrate_cmd.run(args) == 0
    assert "held-out AUC" in capsys.readouterr().out
    card, _ = load_model_folder(out)
    assert card.name == "tiny-ring-cal" and card.realness.target_acceptance == 0.5
    assert sha256_of(out / "generator.onnx") == sha256_of(folder / "generator.onnx")
    assert read_card(folder).realness.discriminator == "training"  # the source folder is untouched


def test_a_version_1_card_is_calibrated_and_written_as_the_current_version(tiny_model_copy):
    # Cards exported before version 2 hold the same fields; the calibration record is new in 2.
    folder = tiny_model_copy("tiny-ring")
    old = read_card(folder).model_copy(update={"schema_version": 1})
    write_card(folder, ModelCard.model_validate(old.model_dump(mode="json")))
    assert read_card(folder).schema_version == 1
    calibrate_model(folder, CalibrationConfig(steps=50, batch=64, eval_every=50), progress=False)
    card, _ = load_model_folder(folder)
    assert card.schema_version == SCHEMA_VERSION and card.realness.discriminator == "calibrated"


def test_auc_and_reliability_on_known_inputs():
    assert cal.auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert cal.auc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.5  # ties count half
    assert cal.auc(np.array([0.0, 3.0]), np.array([1.0, 2.0])) == 0.5
    # Logits of exactly calibrated probabilities: real with probability p in each bin.
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 200_000)
    is_real = rng.uniform(size=p.size) < p
    logit = np.log(p / (1 - p))
    real, fake = logit[is_real], logit[~is_real]
    _, ece = cal.reliability(real, fake)
    assert ece < 0.02
    _, ece_bad = cal.reliability(real * 4, fake * 4)  # overconfident
    assert ece_bad > 0.1


def test_gamma_for_acceptance_hits_the_target_and_matches_the_service_formula():
    from service.core import sampling

    logits = np.random.default_rng(1).normal(0, 2, 20_000).astype(np.float32)
    m = float(logits.max())
    for target in (0.05, 0.25, 0.8):
        g = cal.gamma_for_acceptance(logits, m, target)
        assert cal.acceptance(logits, m, g) == pytest.approx(target, abs=1e-3)
        u = np.random.default_rng(2).uniform(size=logits.size)
        kept = sampling.drs_accept(logits, m, g, u)  # the service's own rule
        assert kept.mean() == pytest.approx(target, abs=0.01)


def test_the_recommended_gamma_is_never_stricter_than_exact_drs():
    logits = np.random.default_rng(3).normal(0, 0.1, 10_000)  # D near 1/2: exact DRS keeps most
    m = float(logits.max())
    assert cal.acceptance(logits, m, 0.0) > 0.5
    assert cal.recommended_gamma(logits, m, 0.25) == 0.0
    wide = np.random.default_rng(4).normal(0, 3, 10_000)  # exact DRS keeps few: loosen to the target
    g = cal.recommended_gamma(wide, float(wide.max()), 0.25)
    assert g < 0 and cal.acceptance(wide, float(wide.max()), g) == pytest.approx(0.25, abs=1e-3)


def test_a_dcgan_d_is_calibrated_with_the_shift_its_bias_free_convolution_cannot_hold(tmp_path):
    """The shipped `patches` case on a tiny DCGAN: its exported D (batch norm folded into the
    convolutions) does not map back onto the torch D, so calibration starts from a fresh one; the
    Platt fit's scale folds into the last convolution and its shift is one Add after it, and the
    served graph reproduces the calibrated D."""
    import onnx

    from training.export import export_run
    from training.presets import resolve
    from training.trainer import train

    run = train(
        resolve("dcgan-mnist", ["network.g_width=8", "network.d_width=8", "batch_size=32", "network.latent.dim=8"]),
        tmp_path / "run",
        max_steps=3,
        progress=False,
    )
    folder = export_run(run, name="tiny-dcgan", out_dir=tmp_path / "models", progress=False)
    g_sha = sha256_of(folder / "generator.onnx")
    report = calibrate_model(
        folder, CalibrationConfig(steps=60, batch=64, lr=1e-3, eval_every=20, patience=2), progress=False
    )
    card, paths = load_model_folder(folder)
    assert report.started_from == "fresh" and card.realness.calibration.started_from == "fresh"
    assert sha256_of(folder / "generator.onnx") == g_sha
    assert "its shift added after it" in card.realness.calibration.method, card.realness.calibration.method
    assert report.after["auc"] > 0.7, report.after["auc"]  # G after 3 steps is easy to tell apart
    assert card.onnx.discriminator.inputs[0].name == "x" and card.onnx.discriminator.outputs[0].name == "logit"
    graph = onnx.load(str(paths["discriminator"])).graph
    assert graph.node[-1].op_type == "Add" and graph.node[-2].op_type in (
        "Flatten",
        "Reshape",
        "Conv",
    )  # the shift, last


def test_parity_of_large_logits_is_judged_relative_to_their_size():
    from training.calibrate import PARITY_TOLERANCE, parity_gap

    small = np.array([0.5, -0.2], dtype=np.float32)
    assert parity_gap(small + 5e-5, small) <= PARITY_TOLERANCE < parity_gap(small + 2e-4, small)
    large = np.array([-40.0, 35.0], dtype=np.float32)  # float32 rounding of a confident D's sums
    assert parity_gap(large + 2e-3, large) <= PARITY_TOLERANCE < parity_gap(large + 1e-2, large)


def test_a_calibration_from_a_fresh_d_is_reproducible(tiny_model_copy, tmp_path):
    # The fresh D's weights and its dropout masks come from torch's generator, seeded by the config.
    folder = tiny_model_copy("tiny-digits")
    cfg = CalibrationConfig(steps=60, batch=64, eval_every=30, lr=1e-3, fresh=True)
    shas = [
        sha256_of(calibrate_model(folder, cfg, out=tmp_path / f"run{i}", progress=False).folder / "discriminator.onnx")
        for i in range(2)
    ]
    assert shas[0] == shas[1]


def test_the_training_ratio_is_kept_beside_the_calibrated_d_and_drs_takes_it(tiny_model_copy):
    from training.calibration_sets import realness_set
    from training.evaluation.samplers import onnx_sampler

    folder = tiny_model_copy("tiny-ring")
    x = np.random.default_rng(0).normal(0, 1, (64, 2)).astype(np.float32)
    trained_bytes = (folder / "discriminator.onnx").read_bytes()
    trained = run_batched(cpu_session(folder / "discriminator.onnx"), x).ravel()
    g_bytes = (folder / "generator.onnx").read_bytes()
    report = calibrate_model(
        folder, CalibrationConfig(steps=150, batch=128, lr=2e-3, eval_every=50, drs_ratio="training"), progress=False
    )
    card, paths = load_model_folder(folder)  # files and signatures as the card says
    assert sorted(paths) == ["discriminator", "generator", "ratio"] and card.drs_role == "ratio"
    assert card.realness.drs_ratio == "training"
    assert (folder / "ratio.onnx").read_bytes() == trained_bytes  # the training D, file for file
    assert [o.name for o in cpu_session(folder / "discriminator.onnx").get_outputs()] == ["logit"]  # one D's cost
    assert (
        np.abs(run_batched(cpu_session(folder / "discriminator.onnx"), x).ravel() - trained).max() > 1e-3
    )  # realness: calibrated
    assert report.after["auc"] > report.before["auc"]
    assert (folder / "generator.onnx").read_bytes() == g_bytes
    # max_logit and gamma are measured on the ratio DRS rejects by, over the card's realness set
    xr, _ = realness_set(onnx_sampler(folder, card, threads=1), card)
    ratio = run_batched(cpu_session(folder / "ratio.onnx"), xr).ravel()
    assert card.realness.max_logit == pytest.approx(float(ratio.max()), abs=1e-6)
    assert card.realness.calibration.acceptance == pytest.approx(
        cal.acceptance(ratio, card.realness.max_logit, card.realness.drs_gamma)
    )
    assert "ratio.onnx" in card.realness.calibration.method

    # Calibrated again, the training D is carried over; asked for the served ratio, it is dropped.
    calibrate_model(folder, CalibrationConfig(steps=50, batch=128, eval_every=50, drs_ratio="training"), progress=False)
    assert (folder / "ratio.onnx").read_bytes() == trained_bytes
    gamma, accept = retarget(folder, 0.5)  # on the ratio, not on realness
    assert accept == pytest.approx(cal.acceptance(ratio, read_card(folder).realness.max_logit, gamma))
    calibrate_model(folder, CalibrationConfig(steps=50, batch=128, eval_every=50), progress=False)
    card, paths = load_model_folder(folder)
    assert sorted(paths) == ["discriminator", "generator"] and card.realness.drs_ratio == "served"
    assert not (folder / "ratio.onnx").exists() and card.onnx.ratio is None


def test_the_training_ratio_cannot_come_from_a_d_calibrated_without_it(tiny_model_copy):
    folder = tiny_model_copy("tiny-ring")
    calibrate_model(folder, CalibrationConfig(steps=50, batch=128, eval_every=50), progress=False)
    before = (folder / "discriminator.onnx").read_bytes()
    with pytest.raises(CalibrationError, match="needs the D trained with G"):
        calibrate_model(
            folder, CalibrationConfig(steps=50, batch=128, eval_every=50, drs_ratio="training"), progress=False
        )
    assert (folder / "discriminator.onnx").read_bytes() == before
    with pytest.raises(CalibrationError, match="drs_ratio"):
        CalibrationConfig(drs_ratio="best")
