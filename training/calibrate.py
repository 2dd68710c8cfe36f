"""Calibrate an exported model's D for serving (Azadi et al. 2019, section 3.2): train D on with G
frozen, real training data against fresh samples of G, until its loss on held-out data stops
improving, so that D approaches D* = p_data / (p_data + p_g) and exp(logit) estimates the density
ratio p_data / p_g that rejection sampling needs. The D trained with G ends near 1/2 everywhere
(the equilibrium of the game), which is right for training and says little to a user.

Works on a model folder alone (the shipped folders hold ONNX graphs, no checkpoints):
- G frozen: its samples come from generator.onnx through onnxruntime, exactly what the service
  serves; the file is copied byte for byte and its sha256 checked after.
- D's starting point: the card's resolved training config rebuilds the project's torch D, and the
  weights come from discriminator.onnx's initializers (the exporter keeps the torch parameter
  names). Checked for parity with the ONNX graph before training; a fresh D only if that fails.
- Held out: the dataset's valid split (early stopping, then a Platt fit of the logit's scale and
  shift, folded into D's last layer) and its test split (every number on the card), each against
  G's samples from latent seeds training never draws.
- DRS's gamma: 0 (exact rejection sampling with the estimated ratio) unless that keeps fewer than
  the target share of 10,000 of G's samples; then loosened just enough to keep the target share.
- A conditional model (G(z, c), D(x, c)): D learns D*(x, c) on real (x, its label) against
  (G(z, c), c), the fakes' classes drawn from the training labels (as the trainer draws them), so
  that c alone tells real from fake nothing and the logit estimates log p_data(x | c) / p_g(x | c),
  the ratio /sample's DRS applies to a candidate of a requested class. Held-out fakes take the held-out
  real labels, noise is scored under uniform random classes, and gamma is chosen over G's samples
  of the classes in turn (as export measures max_logit).

The new folder is built beside the old one and swapped in whole, as export does.
"""

from __future__ import annotations

import copy
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.card import (
    GRAPH_FILES,
    SCHEMA_VERSION,
    Calibration,
    CardError,
    ModelCard,
    Realness,
    check_signature,
    file_entry,
    load_model_folder,
    read_card,
    verify_files,
    write_card,
)
from training.calibration_sets import (
    CLASS_SEED,
    REALNESS_SAMPLES,
    TEST_SEED,
    TRAIN_SEED,
    VALID_SEED,
    held_out_fakes,
    noise_of,
    realness_set,
    split_of,
)
from training.config import TrainConfig
from training.evaluation import calibration as cal
from training.evaluation.samplers import balanced_labels, onnx_sampler
from training.export_parts import export_discriminator
from training.networks import PerSampleDiscriminator
from training.onnx_io import OnnxExportError, cpu_session, run_batched, save_graph, session_signature, signature_of
from training.served_d import (
    CalibrationError,
    d_logit,
    fold_target,
    has_intercept,
    held_out_loss,
    load_discriminator,
    logits_of,
    measure,
    platt_fit,
    served_module,
    with_platt_shift,
)

PARITY_TOLERANCE = 1e-4  # per unit of logit above 1: a D sure of itself (patches: logits of -40) sums
# float32 terms of that size, whose rounding grows with them
POOL_STEPS = 50  # steps' worth of G's samples drawn per generator run during training


def parity_gap(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The largest difference of two D's logits, relative where they pass 1 in magnitude."""
    return float(np.max(np.abs(ours - theirs) / np.maximum(1.0, np.abs(theirs)))) if len(ours) else 0.0


@dataclass(frozen=True)
class CalibrationConfig:
    steps: int = 3000  # at most
    batch: int = 256  # real and generated samples each per step
    lr: float = 1e-4  # Adam, betas (0.5, 0.999) as in training
    eval_every: int = 100
    patience: int = 5  # evaluations without a better held-out loss before stopping
    target_acceptance: float = 0.25
    platt: bool = True
    seed: int = 0
    fresh: bool = False  # start from a freshly initialised D instead of the shipped one
    # What DRS rejects by: "served", the calibrated D's ratio; "training", the D trained with G,
    # kept beside it as the folder's ratio.onnx (models/card.py GRAPH_FILES).
    drs_ratio: str = "served"

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "eval_every", "patience"):
            if getattr(self, name) < 1:
                raise CalibrationError(f"{name}: must be >= 1")
        if not self.lr > 0:
            raise CalibrationError("lr: must be > 0")
        if not 0 < self.target_acceptance <= 1:
            raise CalibrationError("target_acceptance: must be in (0, 1]")
        if self.drs_ratio not in ("served", "training"):
            raise CalibrationError(f"drs_ratio: 'served' or 'training', not {self.drs_ratio!r}")


@dataclass
class Report:
    folder: Path
    started_from: str
    steps: int
    before: dict
    after: dict
    gamma: float
    acceptance: float
    wall_s: float


def _train(module: nn.Module, cfg: CalibrationConfig, real_train: tuple, sample, valid: tuple, progress: bool) -> int:
    """D alone, G frozen: minimize -log D(x) - log(1 - D(G(z))) (a conditional D: -log D(x, y) -
    log(1 - D(G(z, c), c)), y the real labels, c drawn from them). Keeps the weights of the best
    held-out loss; returns the step they were reached at."""
    real_train, labels = real_train
    labels_t = None if labels is None else torch.from_numpy(labels)
    class_rng = np.random.default_rng([CLASS_SEED, cfg.seed])
    c_pool = None
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    # Cosine decay to lr / 20: large steps find the density ratio's shape, small ones its sharp edges
    # (the mixtures' modes are 0.01-0.05 wide); measured on grid25, a constant lr plateaued early.
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps, eta_min=cfg.lr / 20)
    real_t = torch.from_numpy(real_train)
    pool, used = np.empty((0,)), 0
    best, best_state, best_step, waited = held_out_loss(module, *valid), copy.deepcopy(module.state_dict()), 0, 0
    for step in range(1, cfg.steps + 1):
        module.train()  # D's dropout, as in training
        pick = torch.randint(len(real_t), (cfg.batch,), generator=gen)
        x_real, c_real = real_t[pick], None if labels_t is None else labels_t[pick]
        if used + cfg.batch > len(pool):
            # G's fresh samples, POOL_STEPS steps' worth per graph run: one onnxruntime call per
            # step cost more than D's step on small networks. Each sample is used once.
            if labels is None:
                pool, used = sample(cfg.batch * POOL_STEPS, TRAIN_SEED + step), 0
            else:  # the fakes' classes as frequent as the real labels, so c alone says nothing
                c_pool = labels[class_rng.integers(len(labels), size=cfg.batch * POOL_STEPS)]
                pool, used = sample(cfg.batch * POOL_STEPS, TRAIN_SEED + step, c_pool), 0
        x_fake = torch.from_numpy(pool[used : used + cfg.batch])
        c_fake = None if c_pool is None else torch.from_numpy(c_pool[used : used + cfg.batch])
        used += cfg.batch
        loss = F.softplus(-d_logit(module, x_real, c_real)).mean() + F.softplus(d_logit(module, x_fake, c_fake)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % cfg.eval_every == 0:
            held = held_out_loss(module, *valid)
            if progress:
                print(f"  step {step}: train loss {loss.item():.4f}, held-out loss {held:.4f}", flush=True)
            if held < best - 1e-5:
                best, best_state, best_step, waited = held, copy.deepcopy(module.state_dict()), step, 0
            else:
                waited += 1
                if waited >= cfg.patience:
                    break
    module.load_state_dict(best_state)
    return best_step


def calibrate_model(
    folder: Path | str,
    cfg: CalibrationConfig = CalibrationConfig(),
    *,
    out: Path | str | None = None,
    progress: bool = True,
) -> Report:
    """Calibrate `folder`'s D and write the model folder `out` (default: replace `folder`)."""
    t0 = time.perf_counter()
    # A fresh D's initial weights and D's dropout masks come from torch's global generator: seeded,
    # a rerun gives the same D (up to CPU thread scheduling), as a training run does.
    torch.manual_seed(cfg.seed)
    folder = Path(folder)
    card, paths = load_model_folder(folder)
    target = Path(out) if out is not None else folder
    if target != folder and target.exists():
        raise CalibrationError(f"{target}: already exists (calibrate in place, or name a new folder)")
    net_cfg = TrainConfig.from_dict(card.training.config).network
    g_sha = card.generator_sha256
    sample = onnx_sampler(folder, card, threads=1)

    # A second calibration continues from the first one's D (a Platt fit folded into the last layer is
    # just a reparametrisation of it), and the record says so.
    start = card.realness.discriminator if card.realness is not None else "training"
    if cfg.fresh:
        module, start = served_module(net_cfg), "fresh"
    else:
        try:
            module = load_discriminator(paths["discriminator"], net_cfg)
            probe_c = None if card.condition is None else balanced_labels(64, card.condition.classes)
            probe = sample(64, VALID_SEED, probe_c)
            ort_logits = run_batched(cpu_session(paths["discriminator"], 1), probe, c=probe_c).ravel()
            if not parity_gap(ort_logits, logits_of(module, probe, probe_c)) <= PARITY_TOLERANCE:
                raise CalibrationError("the rebuilt D does not reproduce discriminator.onnx")
        except CalibrationError as e:
            if progress:
                print(f"  cannot start from the shipped D ({e}); starting from a fresh one")
            module, start = served_module(net_cfg), "fresh"
    inner = module.packed if isinstance(module, PerSampleDiscriminator) else module
    # DRS by the D trained with G: copied as ratio.onnx, file for file (checked before any training).
    ratio_source = _training_d(card, paths) if cfg.drs_ratio == "training" else None
    ratio_signature = (card.onnx.ratio or card.onnx.discriminator) if ratio_source is not None else None

    real_train, real_valid, real_test = (split_of(card, s) for s in ("train", "valid", "test"))
    valid = (real_valid, held_out_fakes(sample, real_valid, VALID_SEED))
    test_fake = held_out_fakes(sample, real_test, TEST_SEED)
    before = measure(module, real_test, test_fake)

    if isinstance(module, PerSampleDiscriminator):
        raise CalibrationError("calibrating a packed D (d_pack > 1) is not supported yet")
    if cfg.platt:
        fold_target(module)  # refused before training, not after it
    best_step = _train(inner, cfg, real_train, sample, valid, progress)
    platt = platt_fit(module, *valid) if cfg.platt else (1.0, 0.0)
    folded_shift = has_intercept(module) if cfg.platt else True
    module = with_platt_shift(module, platt[1]) if cfg.platt else module
    module.eval()
    after = measure(module, real_test, test_fake)

    x_realness, c_realness = realness_set(sample, card)
    staging = target.parent / f".{target.name}.calibrating-{uuid.uuid4().hex[:8]}"
    shutil.copytree(folder, staging)
    try:
        d_path, r_path = staging / GRAPH_FILES["discriminator"], staging / GRAPH_FILES["ratio"]
        if ratio_source is not None:
            shutil.copyfile(ratio_source, r_path)  # from the folder itself, before its D is replaced below
            check_signature(r_path, ratio_signature, session_signature(cpu_session(r_path, 1)))
        else:
            r_path.unlink(missing_ok=True)  # an earlier calibration's, no longer what DRS rejects by
        # As export writes D: x (and a conditional D's class c) -> logit, checked against the card below.
        proto = export_discriminator(
            module, torch.from_numpy(x_realness[:2]), None if c_realness is None else torch.from_numpy(c_realness[:2])
        )
        save_graph(proto, d_path)
        session = cpu_session(d_path, 1)
        check_signature(d_path, card.onnx.discriminator, session_signature(session))
        check_signature(d_path, card.onnx.discriminator, signature_of(proto))
        logits = run_batched(session, x_realness, c=c_realness).ravel()
        gap = parity_gap(logits, logits_of(module, x_realness, c_realness))
        if not gap <= PARITY_TOLERANCE:
            raise OnnxExportError(
                f"{d_path.name}: differs from torch by {gap:.3g} (relative above 1), beyond {PARITY_TOLERANCE:g}"
            )
        if ratio_source is not None:  # DRS's logits: the training D's
            logits = run_batched(cpu_session(r_path, 1), x_realness, c=c_realness).ravel()
        max_logit = float(logits.max())
        gamma = cal.recommended_gamma(logits, max_logit, cfg.target_acceptance)
        accept = cal.acceptance(logits, max_logit, gamma)
        noise = logits_of(module, *noise_of(card, len(real_test[0])))
        record = Calibration(
            method=(
                f"D trained on with G frozen (Azadi et al. 2019): Adam lr {cfg.lr:g}, {cfg.batch} real training "
                f"samples against {cfg.batch} fresh samples of generator.onnx per step, early stopping on the held-out "
                f"loss every {cfg.eval_every} steps (patience {cfg.patience}, best at step {best_step})"
                + (
                    f", then a Platt fit on the valid split folded into the last layer{_embedding_note(module)} "
                    f"(a={platt[0]:.4g}, b={platt[1]:.4g})"
                    if cfg.platt and folded_shift
                    else f", then a Platt fit on the valid split, its scale folded into the last layer{_embedding_note(module)} and "
                    f"its shift added after it (that layer has no bias) (a={platt[0]:.4g}, b={platt[1]:.4g})"
                    if cfg.platt
                    else ""
                )
                + (
                    f"; DRS rejects by the D trained with G, kept as {GRAPH_FILES['ratio']} (realness stays the "
                    "calibrated D's)"
                    if ratio_source is not None
                    else ""
                )
            ),
            started_from=start,
            started_from_sha256=card.files["discriminator"].sha256,
            steps=best_step,
            held_out=(
                f"{card.dataset} test split ({len(real_test[0])} real) against {len(test_fake[0])} samples of G "
                f"(latent seed {TEST_SEED}); noise: {len(real_test[0])} uniform draws over the sample value range; "
                f"early stopping and the Platt fit used the valid split" + _classes_note(card)
            ),
            auc=after["auc"],
            ece=after["ece"],
            reliability=after["reliability"],
            distributions={
                "real": cal.summary(after["real"]),
                "generated": cal.summary(after["fake"]),
                "noise": cal.summary(noise),
            },
            before={
                "auc": before["auc"],
                "ece": before["ece"],
                "real_mean": cal.summary(before["real"])["mean"],
                "generated_mean": cal.summary(before["fake"])["mean"],
            },
            acceptance=accept,
        )
        data = card.model_dump(mode="json")
        # A calibration record is a version 2 field: an older card is written as the current
        # version (everything valid in version 1 is valid in 2), else it fails after the training;
        # a style-based model's card (version 3) stays what it is.
        data["schema_version"] = max(card.schema_version, SCHEMA_VERSION)
        data["name"] = target.name
        data["files"]["discriminator"] = file_entry(d_path).model_dump(mode="json")
        if ratio_source is not None:
            data["files"]["ratio"] = file_entry(r_path).model_dump(mode="json")
            data["onnx"]["ratio"] = ratio_signature.model_dump(mode="json")
        else:
            data["files"].pop("ratio", None)
            data["onnx"].pop("ratio", None)
        data["realness"] = Realness(
            max_logit=max_logit,
            measured_on=REALNESS_SAMPLES,
            discriminator="calibrated",
            calibration=record,
            drs_gamma=gamma,
            target_acceptance=cfg.target_acceptance,
            drs_ratio=cfg.drs_ratio,
        ).model_dump(mode="json")
        write_card(staging, ModelCard.model_validate(data))
        fresh = read_card(staging)
        verify_files(staging, fresh)
        # verify_files checked every graph against the new card: G's (a style-based model's
        # mapping, synthesis and w_avg) must still be what the old card named.
        if fresh.generator_sha256 != g_sha:
            g_file = "generator" if fresh.style is None else "synthesis"
            raise CardError(staging / GRAPH_FILES[g_file], "changed during calibration")
        _swap(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Report(
        target,
        start,
        best_step,
        {k: before[k] for k in ("auc", "ece")},
        {k: after[k] for k in ("auc", "ece")},
        gamma,
        accept,
        time.perf_counter() - t0,
    )


def _training_d(card: ModelCard, paths: dict[str, Path]) -> Path:
    """The file of the D trained with G: the folder's D itself while it is that one, else the
    ratio.onnx a calibration kept of it; refused (before any training) when it is gone."""
    if card.realness.discriminator == "training":
        return paths["discriminator"]
    if "ratio" in paths:
        return paths["ratio"]
    raise CalibrationError(
        f"{paths['discriminator']}: drs_ratio 'training' needs the D trained with G, and this "
        "folder's D was calibrated without keeping it; calibrate the folder export wrote"
    )


def _embedding_note(module: nn.Module) -> str:
    return " and the class embedding" if getattr(module, "condition", None) == "projection" else ""


def _classes_note(card: ModelCard) -> str:
    if card.condition is None:
        return ""
    return (
        "; conditional: D(x, c) trained on real samples with their labels against G(z, c), c drawn from the "
        "training labels; G's held-out samples take the held-out real labels, noise uniform random classes, "
        f"max_logit and gamma over G's samples of the {card.condition.classes} classes in turn"
    )


def _swap(staging: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
