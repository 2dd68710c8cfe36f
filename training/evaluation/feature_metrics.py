"""RGB image models measured the way the field measures them, in the feature space of a network
trained here (nothing can be downloaded, so no Inception): the 64-d penultimate features of the
project's classifier of the dataset (training/evaluation/classifier.py; for emoji, their Unicode
group). Frechet distance (Heusel et al. 2017), precision and recall (Kynkaanniemi et al. 2019),
density and coverage (Naeem et al. 2020), each beside the same figure for real training images
against the same held-out images: the floor a perfect G would reach with as many samples.
"""

from __future__ import annotations

import numpy as np

from models.card import Metric
from training.data import load_dataset
from training.evaluation.classifier import load_classifier, weights_path
from training.evaluation.frechet import feature_stats, frechet_distance
from training.evaluation.manifold import DC_K, PR_K, density_coverage, precision_recall

SEED = 1234  # as run_metrics: the latents of every evaluation are fixed
# Datasets whose classifier measures RGB models (its features; its accuracy is secondary).
FEATURE_NET_FOR = {"emoji": "emoji"}


def _np(t) -> np.ndarray:
    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


def measure(features_real: np.ndarray, features: np.ndarray) -> dict[str, float]:
    precision, recall = precision_recall(features_real, features)
    density, coverage = density_coverage(features_real, features)
    fd = frechet_distance(*feature_stats(features), *feature_stats(features_real))
    return {"frechet_distance": fd, "precision": precision, "recall": recall, "density": density, "coverage": coverage}


def feature_metrics(dataset: str, options: dict, sample, n: int | None = None) -> dict[str, Metric]:
    """The five figures for `sample` (n, seed) -> images, against the held-out split (valid + test),
    each with the floor: as many real training images against the same held-out ones."""
    clf = load_classifier(FEATURE_NET_FOR[dataset])
    real = np.concatenate([_np(load_dataset(dataset, s, **options).x) for s in ("valid", "test")])
    n = min(n or len(real), len(real))  # equal sets, so ours and the floor are biased alike
    train = _np(load_dataset(dataset, "train", **options).x)
    train = train[np.random.default_rng(SEED + 1).choice(len(train), n, replace=False)]
    generated = sample(n, SEED)
    if tuple(generated.shape[1:]) != clf.sample_shape:
        return {}  # another size than the feature network's (dataset_options.size)
    feats = {name: clf.features_and_probs(x)[0] for name, x in (("real", real), ("ours", generated), ("floor", train))}
    ours, floor = measure(feats["real"], feats["ours"]), measure(feats["real"], feats["floor"])
    src = (
        f"64-d features of the project's {weights_path(FEATURE_NET_FOR[dataset]).name} network (held-out "
        f"accuracy {clf.accuracy:.3f} on its labels), {n} samples vs {len(real)} held-out real {dataset} "
        f"images (valid + test); floor: {n} real training images measured the same way"
    )
    how = {
        "frechet_distance": "Frechet distance (Heusel et al. 2017)",
        "precision": f"precision (Kynkaanniemi et al. 2019, k = {PR_K}): share of samples inside the real manifold",
        "recall": f"recall (Kynkaanniemi et al. 2019, k = {PR_K}): share of real images inside the samples' manifold",
        "density": f"density (Naeem et al. 2020, k = {DC_K}): ~1 when the sets match",
        "coverage": f"coverage (Naeem et al. 2020, k = {DC_K}): share of real images with a sample in their ball",
    }
    return {
        name: Metric(value=ours[name], method=f"{how[name]} of {src}", details={"real_training_images": floor[name]})
        for name in how
    }
