"""Shard formats that training code reads directly: Parquet (one file per shard) and WebDataset
(one tar per shard). Each shard is encoded in memory and handed to the writer as one file, so
the writer's atomic write, checksum and verify cover them like an .npy file.

Parquet: columns `sample` (a tensor: HF `Array2D/3D`, or a fixed-size list for vectors) or
`image` (PNG bytes in HF's `Image` struct), `realness` (float32, with --realness) and `label`
(the class, `ClassLabel`, when a shard carries classes). The Hugging Face feature types ride in
the schema's `huggingface` metadata, which `datasets.load_dataset("parquet", ...)` reads back,
so nobody has to declare them; pyarrow alone sees plain nested fixed-size lists.

WebDataset: per row `<key>.png` or `<key>.npy`, `<key>.json` ({"shard", "row", "realness"}) and
`<key>.cls` (the class, when there is one); the key is the row's position in the whole dataset.
Tar headers carry no time, owner or user name, so the same rows always give the same bytes.

pyarrow is imported only when a Parquet shard is written (the `datasets` extra), so the serving
image needs none of it.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from typing import Optional

import numpy as np

from service.core.encoding import png_bytes
from service.datasets.plan import DatasetSpec

SUFFIX = {"parquet": "parquet", "webdataset": "tar"}  # formats written as one file per shard
_HF_ARRAY = {2: "Array2D", 3: "Array3D", 4: "Array4D", 5: "Array5D"}


def encode(
    spec: DatasetSpec,
    first_row: int,
    array: np.ndarray,
    realness: Optional[np.ndarray],
    classes: Optional[np.ndarray] = None,
    class_names: Optional[Sequence[str]] = None,
) -> bytes:
    """One shard's rows -> the bytes of its file. array: (n, *sample_shape) float32 or uint8;
    realness: (n,) float32 or None; classes: (n,) int or None."""
    if spec.format == "parquet":
        return parquet_bytes(array, realness, spec.encoding == "png", classes, class_names)
    if spec.format == "webdataset":
        return tar_bytes(array, realness, spec.encoding == "png", first_row, classes)
    raise ValueError(f"format {spec.format!r} is not written as one file per shard")


def _npy(row: np.ndarray) -> bytes:
    sink = io.BytesIO()
    np.save(sink, row, allow_pickle=False)  # keeps uint8 rows uint8 (encoding.npy_bytes is float32 only)
    return sink.getvalue()


def _png(image: np.ndarray) -> bytes:
    return png_bytes(image.transpose(1, 2, 0))  # (C, H, W) -> (H, W, C)


def _hf_sample_feature(shape: tuple[int, ...], dtype: str) -> dict:
    if len(shape) == 1:
        return {"feature": {"dtype": dtype, "_type": "Value"}, "length": shape[0], "_type": "List"}
    return {"shape": list(shape), "dtype": dtype, "_type": _HF_ARRAY[len(shape)]}


def _sample_column(pa, array: np.ndarray):
    """(n, *shape) rows as one Arrow column. A vector row is a fixed-size list (HF `List(length=d)`).
    A tensor row is HF's ArrayND extension type, whose name and parameters Parquet keeps in the
    schema, so `datasets` reads an Array3D back (and formats it as numpy without a Python loop),
    while pyarrow alone sees its storage, nested lists."""
    flat = pa.array(np.ascontiguousarray(array).reshape(-1))
    if array.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(flat, array.shape[1])
    storage, rows = flat, len(flat)
    for size in reversed(array.shape[1:]):  # innermost axis first; offsets step by the axis size
        rows //= size
        storage = pa.ListArray.from_arrays(pa.array(np.arange(0, (rows + 1) * size, size, dtype=np.int32)), storage)
    return pa.ExtensionArray.from_storage(_hf_array_type(pa, array.shape[1:], str(array.dtype)), storage)


def _hf_array_type(pa, shape: tuple[int, ...], dtype: str):
    """The type `datasets` registers as datasets.features.features.Array<N>DExtensionType, made
    here without importing `datasets` (writing needs only its name and serialized parameters)."""
    storage = pa.from_numpy_dtype(np.dtype(dtype))
    for _ in shape:
        storage = pa.list_(storage)
    name = f"datasets.features.features.{_HF_ARRAY[len(shape)]}ExtensionType"

    class HfArray(pa.ExtensionType):
        def __init__(self):
            super().__init__(storage, name)

        def __arrow_ext_serialize__(self) -> bytes:
            return json.dumps((list(shape), dtype)).encode()

        @classmethod
        def __arrow_ext_deserialize__(cls, storage_type, serialized):
            return cls()

    return HfArray()


def parquet_bytes(
    array: np.ndarray,
    realness: Optional[np.ndarray],
    as_png: bool,
    classes: Optional[np.ndarray] = None,
    class_names: Optional[Sequence[str]] = None,
) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns, features = {}, {}
    if as_png:
        pngs = [_png(image) for image in array]
        columns["image"] = pa.StructArray.from_arrays(
            [pa.array(pngs, pa.binary()), pa.nulls(len(pngs), pa.string())], names=["bytes", "path"]
        )
        features["image"] = {"_type": "Image"}
    else:
        columns["sample"] = _sample_column(pa, array)
        features["sample"] = _hf_sample_feature(tuple(array.shape[1:]), str(array.dtype))
    if realness is not None:
        columns["realness"] = pa.array(realness.astype(np.float32))
        features["realness"] = {"dtype": "float32", "_type": "Value"}
    if classes is not None:
        columns["label"] = pa.array(classes.astype(np.int64))
        features["label"] = (
            {"names": list(class_names), "_type": "ClassLabel"} if class_names else {"dtype": "int64", "_type": "Value"}
        )
    table = pa.table(columns)
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    sink = io.BytesIO()
    # One row group per shard; no timestamps in Parquet's footer, so the bytes are reproducible.
    pq.write_table(table, sink, row_group_size=max(len(array), 1), compression="zstd")
    return sink.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def tar_bytes(
    array: np.ndarray,
    realness: Optional[np.ndarray],
    as_png: bool,
    first_row: int,
    classes: Optional[np.ndarray] = None,
) -> bytes:
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i, row in enumerate(array):
            key = f"{first_row + i:012d}"  # no dots: WebDataset splits keys at the first one
            if as_png:
                _add(tar, f"{key}.png", _png(row))
            else:
                _add(tar, f"{key}.npy", _npy(row))
            if classes is not None:
                _add(tar, f"{key}.cls", str(int(classes[i])).encode())
            meta = {"row": first_row + i}
            if realness is not None:
                meta["realness"] = float(realness[i])
            _add(tar, f"{key}.json", json.dumps(meta, sort_keys=True).encode())
    return sink.getvalue()
