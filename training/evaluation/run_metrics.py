"""Which metrics fit which dataset, and each one measured with a record of how.

`evaluate(dataset, sample, n_samples)` takes a `sample(n, seed, labels=None) -> np.ndarray (n,
*sample_shape)` function (training/evaluation/samplers.py), so a training run (torch) and an
exported model (onnxruntime) go through the same code. A conditional G (`sample.classes` > 0) is
measured by every metric of its dataset over its classes in turn, and on digits also by label
agreement, per-class Frechet distance and the classification accuracy score (conditional.py).
It returns {metric name: models.card.Metric}; `method` says how each number was made so a reader
can tell which numbers are comparable with which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import numpy as np

from models.card import Metric
from training.data import dataset_info, load_dataset
from training.evaluation import density1d, modes, parzen
from training.evaluation.classifier import load_classifier, weights_path
from training.evaluation.frechet import MAX_ENTROPY, digit_metrics
from training.evaluation.samplers import balanced_labels

Sampler = Callable[[int, int], np.ndarray]
PARZEN_SAMPLES = 10_000
DIGIT_SAMPLES = 10_000
TOY1D_SAMPLES = 100_000
SEED = 1234  # the latents of every evaluation: fixed, so a rerun gives the same numbers
# Digit datasets measured by a project classifier: dataset -> classifier (same pixels, same size).
CLASSIFIER_FOR = {"mnist5k": "mnist5k", "mnist": "mnist5k", "digits": "digits"}
CAS_SIZES = (4_000, 40_000)  # synthetic training sets of the classification accuracy score


def _np(t) -> np.ndarray:
    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


def parzen_metrics(dataset: str, options: dict, sample: Sampler, n: int, progress: bool) -> dict[str, Metric]:
    valid, test = _np(load_dataset(dataset, "valid", **options).x), _np(load_dataset(dataset, "test", **options).x)
    train = _np(load_dataset(dataset, "train", **options).x)
    ours = parzen.parzen_estimate(sample(n, SEED), valid, test, progress=progress)
    # The same estimate with real training digits standing in for G's samples: the ceiling a
    # perfect copy of the training set would score, on the same splits and kernel grid.
    base = parzen.parzen_estimate(train[:n], valid, test, progress=progress)
    how = (
        f"Parzen window (Goodfellow et al. 2014 protocol): {ours.n_samples} samples, sigma from "
        f"logspace(-1, 0, 10) chosen on the {ours.n_valid} {dataset} valid images, mean +- SE over "
        f"the {ours.n_test} {dataset} test images; nats"
    )
    return {
        "parzen_log_likelihood": Metric(
            value=ours.mean,
            stderr=ours.stderr,
            method=how,
            details={"sigma": ours.sigma, "n_samples": ours.n_samples, "dataset": dataset, "split": "test"},
        ),
        "parzen_log_likelihood_of_training_data": Metric(
            value=base.mean,
            stderr=base.stderr,
            method=how.replace(f"{ours.n_samples} samples", f"{base.n_samples} training images as the samples"),
            details={"sigma": base.sigma, "n_samples": base.n_samples, "dataset": dataset, "split": "test"},
        ),
    }


def digit_quality_metrics(dataset: str, options: dict, sample: Sampler, n: int) -> dict[str, Metric]:
    clf_name = CLASSIFIER_FOR[dataset]
    clf = load_classifier(clf_name)
    real = np.concatenate([_np(load_dataset(dataset, s, **options).x) for s in ("valid", "test")])
    gen = sample(n, SEED + 1)
    if tuple(gen.shape[1:]) != clf.sample_shape:
        return {}  # a resized variant (dataset_options.size): the classifier does not apply
    m = digit_metrics(clf, gen, real)
    train = _np(load_dataset(dataset, "train", **options).x)
    ref = digit_metrics(clf, train, real)  # real training digits measured the same way
    src = (
        f"the project's classifier {weights_path(clf_name).name} (held-out accuracy {clf.accuracy:.3f}), "
        f"{m.n_generated} samples vs {m.n_real} held-out real {dataset} images (valid + test)"
    )
    return {
        "frechet_distance": Metric(
            value=m.frechet,
            method=f"Frechet distance of 64-d features of {src}",
            details={"real_training_digits": ref.frechet},
        ),
        "classifier_confidence": Metric(
            value=m.confidence,
            method=f"mean top-class probability under {src}",
            details={"real_training_digits": ref.confidence},
        ),
        "digit_min_share": Metric(
            value=m.min_share,
            method=f"smallest share of a predicted digit under {src}; 0.1 is perfectly even",
            details={"class_shares": m.class_shares, "real_training_digits": ref.min_share},
        ),
        "digit_entropy": Metric(
            value=m.entropy,
            method=f"entropy (nats) of the predicted digit shares under {src}; {MAX_ENTROPY:.3f} is perfectly even",
            details={"real_training_digits": ref.entropy},
        ),
    }


def conditional_digit_metrics(
    dataset: str, options: dict, sample: Sampler, n: int, cas_sizes: tuple[int, ...] = CAS_SIZES, progress: bool = False
) -> dict[str, Metric]:
    """Label agreement, per-class Frechet distance and CAS of a conditional digit G."""
    from training.evaluation import conditional as cond

    clf_name = CLASSIFIER_FOR[dataset]
    clf = load_classifier(clf_name)
    classes = sample.classes
    c = balanced_labels(n, classes)
    gen = sample(n, SEED + 2, c)
    if tuple(gen.shape[1:]) != clf.sample_shape:
        return {}
    src = f"the project's classifier {weights_path(clf_name).name} (held-out accuracy {clf.accuracy:.3f})"
    agree = cond.label_agreement(clf, gen, c)
    held = [load_dataset(dataset, s, **options) for s in ("valid", "test")]
    real_x = np.concatenate([_np(h.x) for h in held])
    real_y = np.concatenate([_np(h.y) for h in held])
    fd = cond.per_class_frechet(clf, gen, c, real_x, real_y)
    train = load_dataset(dataset, "train", **options)
    fd_real = cond.per_class_frechet(clf, _np(train.x), _np(train.y), real_x, real_y)
    out = {
        "label_agreement": Metric(
            value=agree.overall,
            method=(
                f"share of {agree.n} samples G(z, c), classes in turn, that {src} assigns to the requested class c"
            ),
            details={"per_class": agree.per_class},
        ),
        "frechet_distance_per_class_mean": Metric(
            value=float(np.mean(fd)),
            method=(
                f"mean over classes of the Frechet distance of 64-d features of {src} between G(z, c) "
                f"({n // classes} per class) and the held-out real {dataset} images of class c (valid + test)"
            ),
            details={
                "per_class": fd,
                "real_training_digits_per_class": fd_real,
                "real_training_digits_mean": float(np.mean(fd_real)),
            },
        ),
    }
    if not cas_sizes:
        return out
    test = load_dataset(dataset, "test", **options)
    info = dataset_info(dataset, **options)
    budget = clf.meta.get("epochs", cond.CAS_EPOCHS) * -(-int(clf.meta.get("n_train", len(train.x))) // 64)
    scores = {}
    for size in cas_sizes:
        y = cond.cas_labels(size, classes)
        x = sample(size, SEED + 3, y)
        scores[size] = cond.classification_accuracy(
            x, y, _np(test.x), _np(test.y), tuple(info.value_range), max_batches=budget, progress=progress
        )
    real = clf.accuracy  # the same network, recipe, seed and update budget, trained on the real training split
    how = (
        f"Classification Accuracy Score (Ravuri & Vinyals 2019): the project classifier's network and recipe "
        f"(Adam, batch 64, seed {cond.CAS_SEED}, {budget} updates) trained only on N generated samples with "
        f"their requested classes (balanced), accuracy on the {len(test.x)} real {dataset} test images; "
        f"the same recipe on the {clf.meta.get('n_train')} real training images scores {real:.4f}"
    )
    for size, acc in scores.items():
        out[f"cas_{size}"] = Metric(
            value=acc,
            method=how.replace("N generated", f"{size} generated"),
            details={"real_data_accuracy": real, "ratio_to_real": acc / real, "synthetic_samples": size},
        )
    return out


def mode_metrics(dataset: str, sample: Sampler, n: int) -> dict[str, Metric]:
    from training.data.toy import mixture_modes, mixture_sigma

    x = sample(n, SEED).reshape(n, -1)  # a conditional G: its classes (modes) in turn
    r = modes.mode_coverage(x, mixture_modes(dataset), mixture_sigma(dataset))
    how = (
        f"{r.n_samples} samples, each assigned to its nearest of the {r.n_modes} modes and high quality "
        f"within {modes.HQ_SIGMAS:g} sigma of it (VEEGAN / PacGAN protocol)"
    )
    extra = {}
    if getattr(sample, "classes", 0):
        c = balanced_labels(n, sample.classes)
        nearest = np.linalg.norm(x[:, None] - mixture_modes(dataset)[None], axis=2).argmin(axis=1)
        hit = nearest == c
        extra["label_agreement"] = Metric(
            value=float(hit.mean()),
            method=(f"share of {n} samples G(z, c), modes in turn, whose nearest mode is the requested mode c"),
            details={"per_class": [float(hit[c == k].mean()) for k in range(sample.classes)]},
        )
    return {
        **extra,
        "modes_covered": Metric(
            value=r.modes_covered,
            method=f"modes with >= 1 high-quality sample; {how}",
            details={"n_modes": r.n_modes, "counts": r.counts, "modes_with_20pct_of_share": r.modes_covered_at_20pct},
        ),
        "high_quality_share": Metric(value=r.high_quality, method=f"share of high-quality samples; {how}"),
        "mode_reverse_kl": Metric(
            value=r.reverse_kl, method=f"KL(q || uniform) of the high-quality mode histogram q (nats); {how}"
        ),
    }


def toy1d_metrics(sample: Sampler, n: int) -> dict[str, Metric]:
    from training.data.toy import TOY1D_MEAN, TOY1D_STD, toy1d_density

    x = sample(n, SEED).reshape(-1)
    grid = np.linspace(TOY1D_MEAN - 8 * TOY1D_STD, TOY1D_MEAN + 8 * TOY1D_STD, 4001)
    dx = float(grid[1] - grid[0])
    j = density1d.jsd(toy1d_density(grid), density1d.kde(x, grid), dx)
    how = f"p_g by Gaussian KDE (Silverman bandwidth) of {x.size} samples against the closed-form p_data"
    return {
        "jsd": Metric(value=j, method=f"JSD(p_data || p_g) in nats; {how}"),
        "criterion_c": Metric(
            value=density1d.criterion_from_jsd(j),
            method=f"C(G) = -log 4 + 2 JSD (Theorem 1; optimum -log 4 = {-density1d.LOG4:.4f}); {how}",
        ),
        "sample_mean": Metric(value=float(x.mean()), method=f"mean of {x.size} samples", details={"data": TOY1D_MEAN}),
        "sample_std": Metric(
            value=float(x.std()), method=f"standard deviation of {x.size} samples", details={"data": TOY1D_STD}
        ),
    }


def swd_metrics(dataset: str, options: dict, sample: Sampler, n: Optional[int]) -> dict[str, Metric]:
    """RGB images: SWD on Laplacian-pyramid patches against the held-out real images (valid +
    test), with random training images measured the same way as the floor a perfect G would reach."""
    from training.evaluation.swd import NEIGHBOURHOOD, PER_IMAGE, swd

    real = np.concatenate([_np(load_dataset(dataset, s, **options).x) for s in ("valid", "test")])
    n = min(n or len(real), len(real))  # equal sets: SWD compares sorted projections one to one
    real = real[np.random.default_rng(SEED).permutation(len(real))[:n]]
    train = _np(load_dataset(dataset, "train", **options).x)
    train = train[np.random.default_rng(SEED + 1).choice(len(train), n, replace=False)]
    ours, floor = swd(sample(n, SEED), real), swd(train, real)
    how = (
        f"sliced Wasserstein distance x 1e3 (Karras et al. 2018): {PER_IMAGE} random {NEIGHBOURHOOD}x{NEIGHBOURHOOD} "
        f"neighbourhoods per image and Laplacian-pyramid level, channels normalised, 512 directions x 4; "
        f"{n} samples vs {n} held-out real {dataset} images (valid + test); mean over the levels "
        f"{sorted(ours.levels, reverse=True)}"
    )
    return {
        "swd": Metric(
            value=ours.mean,
            method=how,
            details={
                "levels": {str(k): v for k, v in ours.levels.items()},
                "real_training_images": floor.mean,
                "real_training_images_levels": {str(k): v for k, v in floor.levels.items()},
            },
        )
    }


def evaluate(
    dataset: str,
    options: dict,
    sample: Sampler,
    n_samples: Optional[int] = None,
    *,
    progress: bool = True,
    cas_sizes: tuple[int, ...] = CAS_SIZES,
) -> dict[str, Metric]:
    """The metrics that fit `dataset`; `n_samples` overrides each metric's default sample count;
    `cas_sizes` the synthetic set sizes of a conditional digit G's CAS (empty: no CAS)."""
    info = dataset_info(dataset, **options)
    if dataset == "toy1d":
        return toy1d_metrics(sample, n_samples or TOY1D_SAMPLES)
    if dataset in ("ring8", "grid25"):
        return mode_metrics(dataset, sample, n_samples or modes.N_SAMPLES)
    if info.kind != "image":
        raise ValueError(f"dataset: no metrics defined for vector dataset {dataset!r}")
    if info.sample_shape[0] == 3:
        # Colour images: SWD needs no pretrained network; a pixel-space Parzen estimate in 3,072
        # dimensions says little (Theis et al. 2016) and takes long, so it is not computed. Where
        # the project trained a feature network on the dataset, FD, precision / recall and
        # density / coverage in its feature space too.
        from training.evaluation.feature_metrics import FEATURE_NET_FOR, feature_metrics

        out = swd_metrics(dataset, options, sample, n_samples)
        if dataset in FEATURE_NET_FOR:
            out.update(feature_metrics(dataset, options, sample, n_samples))
        return out
    out = parzen_metrics(dataset, options, sample, n_samples or PARZEN_SAMPLES, progress)
    if dataset in CLASSIFIER_FOR:
        out.update(digit_quality_metrics(dataset, options, sample, n_samples or DIGIT_SAMPLES))
        if getattr(sample, "classes", 0):
            out.update(
                conditional_digit_metrics(dataset, options, sample, n_samples or DIGIT_SAMPLES, cas_sizes, progress)
            )
    return out
