"""Find editing directions from a model folder's own graphs (onnxruntime, G frozen).

- Principal (Harkonen et al. 2020, "GANSpace"): for a style-based model, PCA of w over many z; for
  a single-graph model, whose z is isotropic (PCA of z finds nothing), PCA of G's samples, each
  component carried back to z by least squares (GANSpace's transfer for BigGAN: z ~ P A, the rows
  of A are the directions). Ordered by explained variance.
- Class (Shen et al. 2020, "InterFaceGAN"): where the project's classifier labels the model's
  samples (mnist digits, emoji groups) and the model is unconditional, the normal of a linear
  boundary in the latent between each class and the rest: Fisher's discriminant (Sigma + eps I)^-1
  (mu_class - mu_rest), the boundary InterFaceGAN fits with a linear SVM, in closed form.

Every direction is a unit vector in the latent (an amount of 1 moves one unit: one standard
deviation of z), named, with how it was made and the latents' standard deviation along it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.encoder.pairs import FolderGraphs

SAMPLES = 5000
PRINCIPAL = 10
SHRINK = 1e-3  # of the covariance's mean eigenvalue, added to its diagonal (Fisher's discriminant)


@dataclass
class Direction:
    name: str
    kind: str  # "principal" | "class"
    vector: np.ndarray  # (dim,) unit
    how: str
    std: float  # of the latents' coordinate along it
    extra: dict = field(default_factory=dict)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if not n > 0:
        raise ValueError("a direction of zero length")
    return (v / n).astype(np.float32)


def principal(graphs: FolderGraphs, latent: np.ndarray, x: np.ndarray, k: int) -> list[Direction]:
    space = "w" if graphs.card.style is not None else "z"
    if graphs.card.style is not None:
        centred = latent - latent.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        share = s**2 / (s**2).sum()
        return [
            Direction(
                f"pc{i}",
                "principal",
                _unit(vt[i]),
                f"PCA of w over {len(latent)} latents (GANSpace)",
                float((centred @ vt[i]).std()),
                {"explained_variance": float(share[i])},
            )
            for i in range(min(k, len(vt)))
        ]
    flat = x.reshape(len(x), -1).astype(np.float64)
    centred = flat - flat.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    share = s**2 / (s**2).sum()
    coords = centred @ vt[:k].T  # (n, k): each sample's principal coordinates
    coords /= coords.std(axis=0)
    transfer, *_ = np.linalg.lstsq(coords, latent - latent.mean(axis=0), rcond=None)  # (k, z_dim): z ~ coords A
    out = []
    for i in range(min(k, len(transfer))):
        v = _unit(transfer[i])
        out.append(
            Direction(
                f"pc{i}",
                "principal",
                v,
                f"PCA of {len(x)} samples of G, component {i} carried to {space} by least squares (GANSpace)",
                float((latent @ v).std()),
                {"explained_variance": float(share[i])},
            )
        )
    return out


def class_directions(latent: np.ndarray, labels: np.ndarray, names: list[str], classifier: str) -> list[Direction]:
    cov = np.cov(latent, rowvar=False)
    cov += SHRINK * np.trace(cov) / len(cov) * np.eye(len(cov))
    out = []
    for k, name in enumerate(names):
        mine = labels == k
        if mine.sum() < 10 or (~mine).sum() < 10:
            continue  # too few samples of the class (or of the rest) to place a boundary
        v = _unit(np.linalg.solve(cov, latent[mine].mean(axis=0) - latent[~mine].mean(axis=0)))
        out.append(
            Direction(
                f"class:{name}",
                "class",
                v,
                f"Fisher's linear boundary between class {name!r} and the rest, labels from the project's "
                f"{classifier} classifier on {len(latent)} samples of G (InterFaceGAN)",
                float((latent @ v).std()),
                {"share": float(mine.mean())},
            )
        )
    return out


def find(graphs: FolderGraphs, *, samples: int = SAMPLES, k: int = PRINCIPAL, seed: int = 0) -> list[Direction]:
    """Principal directions, then class directions where a classifier applies."""
    pairs = graphs.pairs(samples, seed)
    found = principal(graphs, pairs.latent, pairs.x, k)
    clf_name = _classifier_for(graphs)
    if clf_name is not None and graphs.card.condition is None:
        from training.evaluation.classifier import load_classifier

        clf = load_classifier(clf_name)
        if tuple(pairs.x.shape[1:]) == clf.sample_shape:
            lo, hi = graphs.card.sample.value_range
            x01 = (pairs.x - lo) / (hi - lo) * (clf.value_range[1] - clf.value_range[0]) + clf.value_range[0]
            _, probs = clf.features_and_probs(x01)
            names = [str(i) for i in range(probs.shape[1])]
            if clf_name == "emoji":
                from training.data.emoji import GROUPS

                names = list(GROUPS)
            found += class_directions(pairs.latent, probs.argmax(axis=1), names, clf_name)
    return found


def _classifier_for(graphs: FolderGraphs) -> str | None:
    from training.evaluation.feature_metrics import FEATURE_NET_FOR
    from training.evaluation.run_metrics import CLASSIFIER_FOR

    return {**CLASSIFIER_FOR, **FEATURE_NET_FOR}.get(graphs.card.dataset)
