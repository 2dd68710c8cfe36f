"""A small image classifier, trained by the project, whose features and predictions measure G:
digits by their class, RGB images (emoji by their Unicode group) by its features.

Trained deterministically (fixed seed, fixed order, deterministic kernels) on a dataset's training
split, saved as safetensors under training/evaluation/weights/<dataset>.safetensors together with
its held-out accuracy. Nothing is downloaded: `python -m training.evaluation.classifier DATASET`
rebuilds the file from the dataset the project already ships.

Inputs are samples in the dataset's own representation (N, 1, H, W) with values in `value_range`;
they are mapped to [0, 1] here so a classifier does not care how G's output layer is scaled.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FEATURES = 64
CLASSES = 10


class DigitNet(nn.Module):
    """Two conv blocks and a 64-unit feature layer; works for 28x28 and 8x8 digits alike, and for
    RGB images (the emoji's groups) with `channels` 3 and their `classes`."""

    def __init__(self, height: int, width: int, channels: int = 1, classes: int = CLASSES):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 16, H/2, W/2)
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 32, H/4, W/4)
        )
        flat = 32 * (height // 4) * (width // 4)
        self.features = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(flat, FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(self.conv(x))  # (N, 64)
        return f, self.head(f)  # features, logits (N, classes)


@dataclass
class Classifier:
    net: DigitNet
    sample_shape: tuple[int, ...]
    value_range: tuple[float, float]
    accuracy: float  # on the held-out split named in `meta`
    meta: dict

    def _prepare(self, x: np.ndarray) -> torch.Tensor:
        x = np.asarray(x, dtype=np.float32)
        if tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(f"classifier expects samples of shape {self.sample_shape}, got {tuple(x.shape[1:])}")
        lo, hi = self.value_range
        return torch.from_numpy(np.clip((x - lo) / (hi - lo), 0.0, 1.0))  # (N, C, H, W) in [0, 1]

    @torch.no_grad()
    def features_and_probs(self, x: np.ndarray, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """Penultimate features (N, 64) and class probabilities (N, classes)."""
        self.net.eval()
        t = self._prepare(x)
        feats, probs = [], []
        for i in range(0, t.shape[0], batch):
            f, logits = self.net(t[i : i + batch])
            feats.append(f.numpy())
            probs.append(torch.softmax(logits, 1).numpy())
        return np.concatenate(feats).astype(np.float64), np.concatenate(probs).astype(np.float64)

    def accuracy_on(self, x: np.ndarray, y: np.ndarray) -> float:
        _, p = self.features_and_probs(x)
        return float((p.argmax(1) == np.asarray(y)).mean())


def train_classifier(
    x: np.ndarray,
    y: np.ndarray,
    value_range: tuple[float, float],
    *,
    epochs: int = 15,
    seed: int = 0,
    progress: bool = True,
    max_batches: int | None = None,
) -> Classifier:
    """Adam on cross-entropy with a fixed seed and order: the same data gives the same weights.
    `max_batches` stops after that many minibatch updates (a fixed budget whatever the data's size)."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return _train(x, y, value_range, epochs=epochs, seed=seed, progress=progress, max_batches=max_batches)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


def _train(x, y, value_range, *, epochs: int, seed: int, progress: bool, max_batches: int | None = None) -> Classifier:
    torch.manual_seed(seed)  # initial weights and dropout masks
    shape = tuple(int(d) for d in np.asarray(x).shape[1:])
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ValueError(f"classifier: need images (N, 1 or 3, H, W), got {shape}")
    classes = max(int(np.max(y)) + 1, CLASSES if shape[0] == 1 else 2)
    net = DigitNet(shape[1], shape[2], shape[0], classes)
    clf = Classifier(net, shape, value_range, accuracy=float("nan"), meta={})
    xt, yt = clf._prepare(x), torch.as_tensor(np.asarray(y), dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(seed)
    net.train()
    done = 0
    for _ in tqdm(range(epochs), desc="classifier", unit="epoch", disable=not progress):
        if max_batches is not None and done >= max_batches:
            break
        perm = torch.randperm(xt.shape[0], generator=order)
        for i in range(0, xt.shape[0], 64):
            if max_batches is not None and done >= max_batches:
                break
            done += 1
            idx = perm[i : i + 64]
            _, logits = net(xt[idx])
            loss = nn.functional.cross_entropy(logits, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return clf


def weights_path(dataset: str) -> Path:
    return WEIGHTS_DIR / f"{dataset}.safetensors"


def save_classifier(clf: Classifier, path: Path) -> None:
    meta = dict(
        clf.meta,
        sample_shape=list(clf.sample_shape),
        value_range=list(clf.value_range),
        accuracy=clf.accuracy,
        classes=clf.net.head.out_features,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(
        {k: v.contiguous() for k, v in clf.net.state_dict().items()}, str(tmp), metadata={"meta": json.dumps(meta)}
    )
    tmp.replace(path)


def load_classifier(dataset: str, path: Path | None = None) -> Classifier:
    """The committed classifier for `dataset`; a clear error when there is none."""
    path = path or weights_path(dataset)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no classifier for dataset {dataset!r}; build it with "
            f"`python -m training.evaluation.classifier {dataset}`"
        )
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
    shape = tuple(meta["sample_shape"])
    net = DigitNet(shape[1], shape[2], shape[0], meta.get("classes", CLASSES))  # files before RGB: 10 digits
    net.load_state_dict(load_file(str(path)))
    net.eval()
    return Classifier(net, shape, tuple(meta["value_range"]), float(meta["accuracy"]), meta)


def build(dataset: str, *, epochs: int = 15, seed: int = 0) -> Classifier:
    """Train on the dataset's training split, measure on its test split, save the weights."""
    from training.data import dataset_info, load_dataset

    info = dataset_info(dataset)
    train, test = load_dataset(dataset, "train"), load_dataset(dataset, "test")
    if train.y is None or test.y is None:
        raise ValueError(f"dataset {dataset!r} has no labels; a classifier needs them")
    clf = train_classifier(train.x.numpy(), train.y.numpy(), tuple(info.value_range), epochs=epochs, seed=seed)
    clf.accuracy = clf.accuracy_on(test.x.numpy(), test.y.numpy())
    clf.meta = {
        "dataset": dataset,
        "trained_on": "train",
        "accuracy_on": "test",
        "epochs": epochs,
        "seed": seed,
        "n_train": int(train.x.shape[0]),
        "n_test": int(test.x.shape[0]),
    }
    save_classifier(clf, weights_path(dataset))
    return clf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="train and save the evaluation classifier of a dataset")
    parser.add_argument("dataset", help="a labelled image dataset, e.g. mnist5k, digits or emoji")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    clf = build(args.dataset, epochs=args.epochs, seed=args.seed)
    print(f"{args.dataset}: test accuracy {clf.accuracy:.4f} -> {weights_path(args.dataset)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
