"""`--format parquet` and `--format webdataset`: shards that training code reads directly, read
back here with the libraries it uses (pyarrow, Hugging Face `datasets`, `webdataset` into a torch
DataLoader), row for row equal to the same dataset written as .npy, and covered by the manifest's
checksums like every other format."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pq = pytest.importorskip("pyarrow.parquet")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local files only: nothing may be fetched
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from service.__main__ import main  # noqa: E402

SPEC = ["--samples", 60, "--shard-size", 25, "--block-size", 8, "--seed", 4, "--realness"]


def run_generate(capsys, *args) -> tuple[int, str]:
    code = main(["generate", "--quiet", *map(str, args)])
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def local(models: Path, name: str = "tiny-digits") -> list:
    return ["--model-dir", models / name, "--threads", 1]


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


@pytest.fixture(scope="module")
def npy(tiny_models_dir, tmp_path_factory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same dataset as .npy (float32 rows, uint8 rows, realness): what the other formats must hold."""
    out = tmp_path_factory.mktemp("npy")
    for dtype in ("float32", "uint8"):
        assert (
            main(
                [
                    "generate",
                    "--quiet",
                    *map(str, local(tiny_models_dir)),
                    "--out",
                    str(out / dtype),
                    "--dtype",
                    dtype,
                    *map(str, SPEC),
                ]
            )
            == 0
        )
    load = lambda folder, key: np.concatenate([np.load(folder / s[key]["file"]) for s in manifest(folder)["shards"]])
    return load(out / "float32", "data"), load(out / "uint8", "data"), load(out / "float32", "realness")


def test_parquet_tensors_read_back_with_pyarrow_and_hugging_face_datasets(npy, tiny_models_dir, tmp_path, capsys):
    x, _, realness = npy
    out = tmp_path / "pq"
    assert run_generate(capsys, *local(tiny_models_dir), *SPEC, "--format", "parquet", "--out", out)[0] == 0
    m = manifest(out)
    assert [s["data"]["file"] for s in m["shards"]] == [
        "shard-00000.parquet",
        "shard-00001.parquet",
        "shard-00002.parquet",
    ]
    assert all(s.get("realness") is None for s in m["shards"])  # realness is a column of the shard itself
    table = pq.read_table(out / "shard-00001.parquet")
    assert table.num_rows == 25 and table.column_names == ["sample", "realness"]
    rows = np.asarray(table.column("sample").to_pylist(), np.float32)  # (25, 1, 8, 8)
    np.testing.assert_array_equal(rows, x[25:50])
    np.testing.assert_array_equal(table.column("realness").to_numpy(), realness[25:50])

    import datasets

    ds = datasets.load_dataset(
        "parquet",
        data_files=sorted(map(str, out.glob("shard-*.parquet"))),
        split="train",
        cache_dir=str(tmp_path / "hf"),
    )
    assert ds.features["sample"] == datasets.Array3D(shape=(1, 8, 8), dtype="float32")
    assert ds.features["realness"] == datasets.Value("float32")
    assert len(ds) == 60
    np.testing.assert_array_equal(ds.with_format("numpy")["sample"], x)
    np.testing.assert_array_equal(ds.with_format("numpy")["realness"], realness)


def test_parquet_png_rows_are_hugging_face_images_and_vectors_fixed_size_lists(npy, tiny_models_dir, tmp_path, capsys):
    _, u8, _ = npy
    out = tmp_path / "pq-png"
    code, err = run_generate(
        capsys, *local(tiny_models_dir), *SPEC, "--format", "parquet", "--encoding", "png", "--out", out
    )
    assert code == 0, err
    assert manifest(out)["spec"]["dtype"] == "uint8" and manifest(out)["spec"]["encoding"] == "png"
    import datasets

    ds = datasets.load_dataset(
        "parquet",
        data_files=sorted(map(str, out.glob("shard-*.parquet"))),
        split="train",
        cache_dir=str(tmp_path / "hf"),
    )
    assert isinstance(ds.features["image"], datasets.Image)
    image = ds[37]["image"]  # decoded by datasets into a PIL image
    assert image.size == (8, 8) and image.mode == "L"
    np.testing.assert_array_equal(np.asarray(image), u8[37, 0])

    ring = tmp_path / "ring"  # a vector model: each row a fixed-size list of its coordinates
    assert (
        run_generate(
            capsys,
            *local(tiny_models_dir, "tiny-ring"),
            "--samples",
            30,
            "--shard-size",
            30,
            "--format",
            "parquet",
            "--out",
            ring,
        )[0]
        == 0
    )
    ds = datasets.load_dataset(
        "parquet", data_files=str(ring / "shard-00000.parquet"), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert ds.features["sample"] == datasets.List(datasets.Value("float32"), length=2)
    assert np.asarray(ds.with_format("numpy")["sample"]).shape == (30, 2)


def test_webdataset_tars_read_back_into_a_torch_dataloader(npy, tiny_models_dir, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    wds = pytest.importorskip("webdataset")
    x, u8, realness = npy
    out = tmp_path / "wds"
    assert run_generate(capsys, *local(tiny_models_dir), *SPEC, "--format", "webdataset", "--out", out)[0] == 0
    urls = [str(out / s["data"]["file"]) for s in manifest(out)["shards"]]
    assert [Path(u).name for u in urls] == ["shard-00000.tar", "shard-00001.tar", "shard-00002.tar"]
    pipeline = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode().to_tuple("__key__", "npy", "json")
    keys, xs, metas = [], [], []
    for key, sample, meta in torch.utils.data.DataLoader(pipeline, batch_size=16, num_workers=0):
        keys += list(key)
        xs.append(sample.numpy())
        metas += [float(r) for r in meta["realness"]]
    assert keys == [f"{i:012d}" for i in range(60)]  # the row's place in the whole dataset
    np.testing.assert_array_equal(np.concatenate(xs), x)
    np.testing.assert_allclose(metas, realness, rtol=1e-6)

    png = tmp_path / "wds-png"
    assert (
        run_generate(
            capsys, *local(tiny_models_dir), *SPEC, "--format", "webdataset", "--encoding", "png", "--out", png
        )[0]
        == 0
    )
    pipeline = (
        wds.WebDataset(str(png / "shard-00002.tar"), shardshuffle=False, empty_check=False).decode("l8").to_tuple("png")
    )
    images = np.stack([image for (image,) in pipeline])  # (10, 8, 8) uint8 grey levels
    np.testing.assert_array_equal(images, u8[50:60, 0])
    # Same spec, same bytes: tar headers carry no time or owner.
    again = tmp_path / "wds-again"
    assert (
        run_generate(
            capsys, *local(tiny_models_dir), *SPEC, "--format", "webdataset", "--encoding", "png", "--out", again
        )[0]
        == 0
    )
    assert (again / "shard-00002.tar").read_bytes() == (png / "shard-00002.tar").read_bytes()


def test_the_manifest_covers_parquet_and_tar_shards(tiny_models_dir, tmp_path, capsys):
    for fmt, suffix in (("parquet", "parquet"), ("webdataset", "tar")):
        out = tmp_path / fmt
        args = [*local(tiny_models_dir), *SPEC, "--format", fmt, "--out", out]
        assert run_generate(capsys, *args)[0] == 0
        good = (out / f"shard-00001.{suffix}").read_bytes()
        data = bytearray(good)
        data[len(data) // 2] ^= 0xFF
        (out / f"shard-00001.{suffix}").write_bytes(bytes(data))
        code, err = run_generate(capsys, *args)
        assert code == 0 and f"shard 1: shard-00001.{suffix} does not match its sha256" in err
        assert "repaired 1, skipped 2" in err
        assert (out / f"shard-00001.{suffix}").read_bytes() == good


def test_format_options_are_checked(tiny_models_dir, tmp_path, capsys):
    code, err = run_generate(capsys, *local(tiny_models_dir), *SPEC, "--encoding", "png", "--out", tmp_path / "a")
    assert code == 2 and "--encoding: png rows are for --format parquet or webdataset" in err
    code, err = run_generate(
        capsys,
        *local(tiny_models_dir, "tiny-ring"),
        *SPEC,
        "--format",
        "parquet",
        "--encoding",
        "png",
        "--out",
        tmp_path / "b",
    )
    assert code == 2 and "tiny-ring makes vectors" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_class_labels_become_cls_entries_and_a_class_label_column(tmp_path):
    """Shards of a conditional model carry each row's class: `.cls` in a tar, a `label` column
    (HF ClassLabel with the card's names) in Parquet. Encoded directly: the CLI passes classes once
    the source draws them (issue #13)."""
    wds = pytest.importorskip("webdataset")
    import datasets

    from service.datasets import formats
    from service.datasets.plan import DatasetSpec

    x = np.arange(12, dtype=np.float32).reshape(3, 1, 2, 2)
    classes = np.array([2, 0, 1])
    spec = DatasetSpec(
        model="m", model_version="-", base_seed=0, samples=3, shard_size=3, block_size=3, format="webdataset"
    )
    (tmp_path / "s.tar").write_bytes(formats.encode(spec, 6, x, None, classes))
    rows = list(
        wds.WebDataset(str(tmp_path / "s.tar"), shardshuffle=False, empty_check=False)
        .decode()
        .to_tuple("__key__", "cls", "npy")
    )
    assert [(key, cls) for key, cls, _ in rows] == [("000000000006", 2), ("000000000007", 0), ("000000000008", 1)]
    np.testing.assert_array_equal(rows[1][2], x[1])
    spec = spec.model_copy(update={"format": "parquet"})
    (tmp_path / "s.parquet").write_bytes(formats.encode(spec, 6, x, None, classes, ["zero", "one", "two"]))
    ds = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "s.parquet"), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert ds.features["label"] == datasets.ClassLabel(names=["zero", "one", "two"])
    assert ds["label"] == [2, 0, 1]
