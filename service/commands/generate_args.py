"""`python -m service generate`'s flags: what the command takes, and each option checked (and the
dataset's definition, DatasetSpec, made from them) before anything is connected to or written. A
bad value is a UsageError naming its option; generate.py runs the job."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

from pydantic import ValidationError

from service.datasets.plan import DatasetSpec, FilterSpec
from service.runtime import backends

PLACEHOLDER_VERSION = "-"  # for checking the options' ranges before the model is known


class UsageError(ValueError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--url",
        action="append",
        metavar="URL",
        help="a server's base URL; repeat for several replicas (requests go round-robin)",
    )
    source.add_argument(
        "--model-dir",
        type=Path,
        metavar="FOLDER",
        help="a local model folder (e.g. models/mnist): no server, the same engine",
    )
    parser.add_argument("--model", help="model name on the server (default: the server's default model)")
    parser.add_argument(
        "--out",
        required=True,
        help="the dataset folder (created; reruns resume it), or an fsspec URL such as "
        "s3://bucket/prefix (needs the backend, e.g. s3fs: the `data` extra)",
    )
    parser.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an fsspec option for a URL --out, e.g. endpoint_url=http://127.0.0.1:9000 "
        "(values read as JSON when they parse); repeat for several",
    )
    parser.add_argument("--samples", type=int, required=True, help="samples in the whole dataset")
    parser.add_argument("--shard-size", type=int, default=10_000, help="samples per shard (default 10000)")
    parser.add_argument(
        "--block-size",
        type=int,
        default=1024,
        help="samples per request, at most the server's max n (default 1024); part of "
        "the dataset's definition, like --seed",
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed of the dataset (default 0)")
    parser.add_argument(
        "--format",
        choices=["npy", "png", "parquet", "webdataset"],
        default="npy",
        help="npy arrays, folders of PNGs, one Parquet file or one WebDataset tar per shard",
    )
    parser.add_argument(
        "--encoding",
        choices=["array", "png"],
        default="array",
        help="parquet/webdataset rows as tensors (default) or PNG images (uint8)",
    )
    parser.add_argument(
        "--dtype",
        choices=["float32", "uint8"],
        help="npy: float32 samples (default) or uint8 pixels (images); png is always uint8",
    )
    parser.add_argument("--realness", action="store_true", help="also store each row's realness (D) beside its shard")
    parser.add_argument(
        "--labels",
        action="store_true",
        dest="labels_deprecated",
        help="deprecated alias of --realness (it never meant class labels; see --classes)",
    )
    parser.add_argument(
        "--classes",
        metavar="POLICY",
        help="a conditional model's class labels, stored beside each shard: balanced (classes in "
        "turn over the dataset), uniform (drawn from the seed; the default), or classes with "
        "proportions like 3:1,7:3 or 0,1,2 (equal) by index or name",
    )
    parser.add_argument("--truncation", type=float, help="redraw latent coordinates with |z| beyond this")
    parser.add_argument(
        "--edit",
        metavar="DIR:AMOUNT,...",
        help="move every latent along the model's editing directions, e.g. class:7:2.5,pc0:-1 (as /sample's edit)",
    )
    parser.add_argument(
        "--truncation-psi",
        type=float,
        help="a style-based model: truncation in w, w_avg + psi (w - w_avg), as /sample's truncation_psi",
    )
    parser.add_argument("--min-realness", type=float, help="keep only samples with realness >= this (0..1)")
    parser.add_argument("--drs", action="store_true", help="discriminator rejection sampling (Azadi et al. 2019)")
    parser.add_argument(
        "--drs-gamma",
        type=float,
        help="DRS acceptance shift; higher is stricter (default: the model card's, as /sample uses; "
        "the manifest records the value used)",
    )
    part = parser.add_mutually_exclusive_group()
    part.add_argument("--shards", metavar="LIST", help="only these shards, e.g. 17-20 or 0,3,5-9")
    part.add_argument("--shard", metavar="i/N", help="only shards i, i+N, i+2N, ...: one of N machines' part")
    parser.add_argument(
        "--workers", type=int, help="shards made at once (default: 2 locally, 2 per server URL over HTTP)"
    )
    parser.add_argument("--retries", type=int, default=5, help="HTTP: retries of a failed request (default 5)")
    parser.add_argument(
        "--backoff", type=float, default=0.5, help="HTTP: first retry delay in s, doubling (default 0.5)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="HTTP: seconds per request (default 120)")
    parser.add_argument("--token", help="HTTP: bearer token (default: $GANSERVE_API_TOKEN)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="local: execution device")
    parser.add_argument("--threads", type=int, help="local: graph threads (default: all cores)")
    parser.add_argument(
        "--backend",
        choices=[*backends.NAMES, "auto"],
        default=backends.DEFAULT,
        help="local, on the CPU: the engine that runs the graphs (default onnxruntime, the same bytes "
        "as a server pinned to it; openvino or auto (the faster) agree within float tolerance, "
        "not to the byte). The manifest records the engine of every shard",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    # --- Ray (service/datasets/ray_job.py): the shards run on a cluster's workers ---
    parser.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run the shards on Ray actors, one model load each (GPU actors when the "
        "cluster has GPUs); ADDRESS of a running cluster (host:port or auto), or "
        "none for a local Ray. Needs --model-dir and the `ray` extra; --workers "
        "sets the actors (default: one per CPU, or per GPU, of the cluster)",
    )


def filtered(args: argparse.Namespace) -> bool:
    return args.min_realness is not None or args.drs


def dataset_spec(
    args: argparse.Namespace,
    model: str,
    version: str,
    max_draws_factor: int,
    classes: Optional[dict] = None,
    card_gamma: float = 0.0,
) -> DatasetSpec:
    """The dataset's definition; an out-of-range value is a UsageError naming its option. The
    source's draw bound is recorded only for a filtered dataset (nothing is redrawn otherwise)."""
    dtype = args.dtype or ("uint8" if args.format == "png" or args.encoding == "png" else "float32")
    try:
        return DatasetSpec(
            model=model,
            model_version=version,
            base_seed=args.seed,
            samples=args.samples,
            shard_size=args.shard_size,
            block_size=args.block_size,
            truncation=args.truncation,
            truncation_psi=args.truncation_psi,
            edit=parse_edits(args.edit),
            filter=FilterSpec.asked(args.min_realness, args.drs, args.drs_gamma, card_gamma),
            max_draws_factor=max_draws_factor if filtered(args) else None,
            format=args.format,
            encoding=args.encoding,
            dtype=dtype,
            realness=args.realness or args.labels_deprecated,
            classes=classes,
        )
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        loc = [str(p) for p in err["loc"] if p != "filter"]
        option = {"base_seed": "seed"}.get(loc[0], loc[0]) if loc else ""
        where = f"--{option.replace('_', '-')}: " if option else ""
        raise UsageError(f"{where}{err['msg'].removeprefix('Value error, ')}") from None


def storage_options(args: argparse.Namespace) -> dict:
    options = {}
    for item in args.storage_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option: {item!r} is not KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def check_options(args: argparse.Namespace) -> None:
    if args.ray is not None and args.model_dir is None:
        raise UsageError("--ray: runs the engine on the cluster's workers from a model folder: use --model-dir")
    if (
        args.workers is None and args.ray is None
    ):  # two in flight per source: one computing while the other's shard is written
        args.workers = 2 * len(args.url) if args.url else 2
    for name in ("workers", "retries", "threads"):
        value = getattr(args, name)
        if value is not None and not (0 if name == "retries" else 1) <= value <= 256:
            raise UsageError(f"--{name}: out of range ({value})")
    if not (args.backoff >= 0 and args.timeout > 0):
        raise UsageError("--backoff must be >= 0 and --timeout > 0")
    if (args.format == "png" or args.encoding == "png") and args.dtype == "float32":
        raise UsageError("--dtype: png shards are 8-bit images; leave --dtype out or use uint8")
    if args.encoding == "png" and args.format not in ("parquet", "webdataset"):
        raise UsageError("--encoding: png rows are for --format parquet or webdataset (--format png writes PNG files)")
    if args.model_dir is not None and args.model is not None and args.model != args.model_dir.name:
        raise UsageError(f"--model {args.model!r} differs from the folder {args.model_dir} (leave --model out)")
    dataset_spec(args, args.model or "x", PLACEHOLDER_VERSION, 1)  # ranges, before connecting to anything


def parse_edits(text: str | None) -> list[tuple[str, float]] | None:
    """`class:7:2.5,pc0:-1` -> [("class:7", 2.5), ("pc0", -1.0)]: the amount after the last colon."""
    if not text:
        return None
    out = []
    for item in text.split(","):
        name, sep, amount = item.strip().rpartition(":")
        try:
            value = float(amount)
        except ValueError:
            value = None
        if not sep or not name or value is None or not -100 <= value <= 100:
            raise UsageError(f"--edit: {item!r} is not DIRECTION:AMOUNT with an amount in -100..100")
        out.append((name, value))
    return out


def check_edit(moves: list[tuple[str, float]], source) -> None:
    """Every direction must be one the model has (its directions.json, or GET /models over HTTP)."""
    known = getattr(source, "directions", None)
    if known is None:
        return  # a source that cannot list them: the server refuses an unknown one, naming it
    for name, _ in moves:
        if name not in known:
            raise UsageError(f"--edit: {name!r} is not a direction of the model ({', '.join(known) or 'none'})")
