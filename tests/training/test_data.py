"""The datasets: shapes, ranges, deterministic splits, IDX and folder files, errors naming files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from training.data import DATASETS, DataError, dataset_info, load_dataset
from training.data.idx import FILES
from training.data.toy import TOY1D_MEAN, TOY1D_STD, mixture_modes, mixture_sigma, toy1d_density

BUILTIN = ("toy1d", "ring8", "grid25", "digits", "mnist5k", "patches", "emoji")


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_splits_match_their_info_and_are_deterministic(name):
    info = dataset_info(name)
    sizes = {}
    for split in ("train", "valid", "test"):
        s = load_dataset(name, split)
        assert s.x.dtype == torch.float32 and tuple(s.x.shape[1:]) == info.sample_shape
        lo, hi = info.value_range
        assert lo <= s.x.min().item() and s.x.max().item() <= hi
        if s.y is not None:
            assert s.y.dtype == torch.int64 and s.y.shape == (len(s.x),)
        sizes[split] = len(s.x)
    again = load_dataset(name, "test")
    assert torch.equal(again.x, load_dataset(name, "test").x)
    assert sizes["train"] > sizes["valid"] > 0 and sizes["test"] > 0
    assert not torch.equal(load_dataset(name, "valid").x[:10], again.x[:10])
    assert info.kind == ("image" if len(info.sample_shape) == 3 else "vector")


def test_patches_are_rgb_crops_of_the_photographs_split_by_columns():
    from training.data.patches import cut, photographs

    photos = photographs()
    assert [p.shape for p in photos] == [(427, 640, 3), (427, 640, 3)]
    train = load_dataset("patches", "train")
    assert tuple(train.x.shape) == (6100, 3, 32, 32) and train.y is None
    # The first training patch is the top-left corner of the first photograph, pixel for pixel.
    assert torch.equal(train.x[0], torch.from_numpy(photos[0][:32, :32].transpose(2, 0, 1) / 255.0).float())
    # No test patch reaches into the training columns: the split is by region, not by patch.
    assert cut(photos[0], 32, 8, (576, 640)).shape[0] == load_dataset("patches", "test").x.shape[0] // 2
    assert tuple(load_dataset("patches", "valid", size=16, stride=16).x.shape[1:]) == (3, 16, 16)
    with pytest.raises(DataError, match="dataset_options.size"):
        dataset_info("patches", size=100)
    with pytest.raises(DataError, match="dataset_options.stride"):
        dataset_info("patches", stride=0)


def test_mnist5k_is_4000_500_500_stratified():
    splits = {s: load_dataset("mnist5k", s) for s in ("train", "valid", "test")}
    assert [len(splits[s].x) for s in ("train", "valid", "test")] == [4000, 500, 500]
    assert splits["train"].y.bincount().tolist() == [400] * 10
    assert splits["test"].y.bincount().tolist() == [50] * 10
    assert splits["train"].x.max().item() == 1.0  # pixels / 255
    assert load_dataset("mnist5k", "train", size=32).x.shape == (4000, 1, 32, 32)  # padded for DCGAN


def test_toy_closed_forms_match_the_samples():
    x = load_dataset("toy1d", "train").x.numpy().ravel()
    assert abs(x.mean() - TOY1D_MEAN) < 0.05 and abs(x.std() - TOY1D_STD) < 0.05
    grid = np.linspace(TOY1D_MEAN - 8 * TOY1D_STD, TOY1D_MEAN + 8 * TOY1D_STD, 4001)
    assert np.trapezoid(toy1d_density(grid), grid) == pytest.approx(1.0, abs=1e-6)
    for name, k in (("ring8", 8), ("grid25", 25)):
        modes, s = mixture_modes(name), load_dataset(name, "train")
        assert modes.shape == (k, 2)
        # every sample lies within 5 sigma of the mode its label names
        dist = np.linalg.norm(s.x.numpy() - modes[s.y.numpy()], axis=1)
        assert dist.max() < 5 * mixture_sigma(name)
        assert len(np.unique(s.y.numpy())) == k


def test_unknown_dataset_option_and_split_are_named():
    with pytest.raises(DataError, match="dataset:.*'nope'"):
        load_dataset("nope", "train")
    with pytest.raises(DataError, match="dataset_options.colour"):
        load_dataset("digits", "train", colour=1)
    with pytest.raises(DataError, match="dataset_options.size: expected int"):
        load_dataset("digits", "train", size="big")
    with pytest.raises(DataError, match="split"):
        load_dataset("toy1d", "training")
    assert set(BUILTIN) | {"mnist", "folder"} == set(DATASETS)


# ---- full MNIST from IDX files ----


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_tiny_mnist(folder: Path, n_train: int = 60, n_test: int = 12, gz: bool = False) -> Path:
    """IDX files of random pixels, in the real file names (gzipped or not)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = FILES[split]
        for stem, arr in ((images, rng.integers(0, 256, (n, 28, 28))), (labels, rng.integers(0, 10, n))):
            data = idx_bytes(arr)
            (folder / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(data) if gz else data)
    return folder


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_split_keeps_the_papers_proportions(tmp_path, gz):
    folder = write_tiny_mnist(tmp_path / "mnist", gz=gz)
    train = load_dataset("mnist", "train", path=str(folder))
    valid = load_dataset("mnist", "valid", path=str(folder))
    test = load_dataset("mnist", "test", path=str(folder))
    assert (len(train.x), len(valid.x), len(test.x)) == (50, 10, 12)  # 5:1 like 50,000 : 10,000
    assert train.x.shape[1:] == (1, 28, 28) and 0.0 <= train.x.min() and train.x.max() <= 1.0
    raw = (
        gzip.decompress((folder / "train-images-idx3-ubyte.gz").read_bytes())
        if gz
        else (folder / "train-images-idx3-ubyte").read_bytes()
    )
    first = np.frombuffer(raw[16 : 16 + 784], dtype=np.uint8).reshape(28, 28) / 255.0
    assert np.allclose(train.x[0, 0].numpy(), first)
    assert load_dataset("mnist", "test", path=str(folder), size=32).x.shape == (12, 1, 32, 32)


def _corrupt(folder: Path, name: str, data: bytes) -> None:
    (folder / name).write_bytes(data)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing", "missing"),
        ("truncated", "truncated"),
        ("trailing", "trailing bytes"),
        ("magic", "not an IDX file"),
        ("empty", "truncated"),
    ],
)
def test_bad_idx_files_are_named_with_their_problem(tmp_path, damage, message):
    folder = write_tiny_mnist(tmp_path / "mnist")
    path = folder / "train-images-idx3-ubyte"
    data = path.read_bytes()
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(data[:-100])
    elif damage == "trailing":
        path.write_bytes(data + b"\0\0")
    elif damage == "magic":
        path.write_bytes(b"\x00\x00\x0d\x03" + data[4:])  # float32 instead of ubyte
    else:
        path.write_bytes(b"")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*" + message):
        load_dataset("mnist", "train", path=str(folder))


def test_idx_label_problems_are_named(tmp_path):
    folder = write_tiny_mnist(tmp_path / "mnist")
    labels = folder / "train-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.zeros(59)))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte: 59 labels for 60 images"):
        load_dataset("mnist", "train", path=str(folder))
    labels.write_bytes(idx_bytes(np.full(60, 12)))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte: label 12"):
        load_dataset("mnist", "valid", path=str(folder))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    (folder / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: unreadable"):
        load_dataset("mnist", "test", path=str(folder))


def test_mnist_needs_an_existing_directory(tmp_path):
    with pytest.raises(DataError, match="dataset_options.path"):
        load_dataset("mnist", "train")
    with pytest.raises(DataError, match="not a directory"):
        load_dataset("mnist", "train", path=str(tmp_path / "nowhere"))


# ---- a folder of the user's images ----


def write_pngs(folder: Path, n: int = 20, size: int = 12) -> Path:
    from PIL import Image

    rng = np.random.default_rng(1)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        # half of them in a sub-folder, half as JPEG, to show both are found
        target = folder / ("sub" if i % 2 else "") / f"img{i:02d}.{'jpg' if i % 4 == 1 else 'png'}"
        Image.fromarray(pixels).save(target)
    return folder


def test_folder_images_are_resized_in_gray_or_rgb(tmp_path):
    folder = write_pngs(tmp_path / "imgs")
    rgb = {s: load_dataset("folder", s, path=str(folder), size=8) for s in ("train", "valid", "test")}
    assert [len(rgb[s].x) for s in ("train", "valid", "test")] == [16, 2, 2]
    assert rgb["train"].x.shape == (16, 3, 8, 8) and rgb["train"].y is None
    gray = load_dataset("folder", "train", path=str(folder), size=16, channels=1)
    assert gray.x.shape == (16, 1, 16, 16)
    assert 0.0 <= gray.x.min() and gray.x.max() <= 1.0
    assert dataset_info("folder", path=str(folder), size=16, channels=1).sample_shape == (1, 16, 16)


def test_folder_errors_name_the_folder_or_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no .png"):
        load_dataset("folder", "train", path=str(tmp_path / "empty"))
    folder = write_pngs(tmp_path / "imgs", n=3)
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png: not a readable image"):
        for split in ("train", "valid", "test"):
            load_dataset("folder", split, path=str(folder))
    with pytest.raises(DataError, match="dataset_options.channels"):
        load_dataset("folder", "train", path=str(folder), channels=2)
