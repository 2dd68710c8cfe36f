"""Choose DRS's gamma again for another target acceptance, D unchanged (`python -m training
calibrate MODEL_DIR --retarget`): only the card's drs_gamma, target_acceptance and the recorded
acceptance change, measured over the same realness samples calibration used (training/calibrate.py)."""

from __future__ import annotations

from pathlib import Path

from models.card import ModelCard, load_model_folder, write_card
from training.calibration_sets import realness_set
from training.evaluation import calibration as cal
from training.evaluation.samplers import onnx_sampler
from training.onnx_io import cpu_session, run_batched
from training.served_d import CalibrationError


def retarget(folder: Path | str, target_acceptance: float) -> tuple[float, float]:
    """Choose DRS's gamma again for another target acceptance (cal.recommended_gamma), with D
    unchanged (no training): only the card's drs_gamma, target_acceptance and calibration.acceptance change. Returns
    (gamma, acceptance)."""
    if not 0 < target_acceptance <= 1:
        raise CalibrationError("target_acceptance: must be in (0, 1]")
    folder = Path(folder)
    card, paths = load_model_folder(folder)
    x, c = realness_set(onnx_sampler(folder, card, threads=1), card)
    logits = run_batched(cpu_session(paths[card.drs_role], 1), x, c=c).ravel()  # what DRS rejects by
    max_logit = max(card.realness.max_logit, float(logits.max()))
    gamma = cal.recommended_gamma(logits, max_logit, target_acceptance)
    accept = cal.acceptance(logits, max_logit, gamma)
    data = card.model_dump(mode="json")
    data["realness"].update(drs_gamma=gamma, target_acceptance=target_acceptance)
    if data["realness"].get("calibration"):
        data["realness"]["calibration"]["acceptance"] = accept
    write_card(folder, ModelCard.model_validate(data))
    return gamma, accept
