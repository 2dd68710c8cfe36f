"""`python -m service generate`: write a sharded synthetic dataset (see docs/DATASETS.md).

    python -m service generate --model-dir models/mnist --samples 1000000 --out data/mnist-1m
    python -m service generate --url http://a:3000 --url http://b:3000 --samples 1000000 --out data/mnist-1m
    python -m service generate ... --shard 2/8        # this machine's eighth of the shards
    python -m service generate ... --shards 17-20     # regenerate those shards
    python -m service generate --model-dir models/mnist ... --ray --out s3://bucket/mnist-1m --format parquet

Everything is checked before anything is written: a bad option, an unknown model, an unwritable
output folder or an unreachable server ends with one line on stderr and exit code 2. A failure
during the run (a server that stops answering) exits 1, an interrupt 130; neither leaves a
partial shard, and a rerun of the same command resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Optional

from pydantic import ValidationError

from service.core.sampling import card_drs_gamma
from service.datasets import manifest as mf
from service.datasets.job import Interrupted, Job
from service.datasets.plan import DatasetSpec, PlanError, class_spec, parse_part, parse_shards
from service.datasets.sources import HttpSource, Source, SourceError, open_local
from service.datasets.storage import LocalStorage, Storage, StorageError, open_storage
from service.runtime import backends
from service.settings import SettingsError, cpu_count, load_settings

EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130
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


def _filtered(args: argparse.Namespace) -> bool:
    return args.min_realness is not None or args.drs


def _spec(
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
            edit=_edits(args.edit),
            filter={
                "min_realness": args.min_realness,
                "drs": args.drs,
                "drs_gamma": args.drs_gamma if args.drs_gamma is not None else (card_gamma if args.drs else 0.0),
            },
            max_draws_factor=max_draws_factor if _filtered(args) else None,
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


def _storage_options(args: argparse.Namespace) -> dict:
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


def _check_options(args: argparse.Namespace) -> None:
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
    _spec(args, args.model or "x", PLACEHOLDER_VERSION, 1)  # ranges, before connecting to anything


def _check_limits(source: Source, spec: DatasetSpec) -> None:
    """A block over the server's max n would be refused mid-run: refuse it before anything is written."""
    largest = min(spec.block_size, spec.shard_size, spec.samples)  # the most samples one request asks for
    if source.max_n is not None and largest > source.max_n:
        raise UsageError(
            f"--block-size: {spec.block_size} is over the server's max n of {source.max_n} "
            f"(GANSERVE_MAX_N there); use --block-size {source.max_n} or less"
        )


def _check_output(store: Storage) -> None:
    """A local folder must be (creatable in) a writable folder; a URL's bucket must exist."""
    if isinstance(store, LocalStorage):
        _check_writable(store.folder)
    else:
        try:
            store.ensure()
        except StorageError as e:
            raise UsageError(str(e).removeprefix("--out: ")) from None


def _check_writable(out: Path) -> None:
    """The output folder, or the nearest folder above it that exists, must be a writable folder."""
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--out: {out} exists and is not a folder")
        target = out
    else:
        target = next(p for p in out.absolute().parents if p.exists())
        if not target.is_dir():
            raise UsageError(f"--out: cannot create {out}: {target} is not a folder")
    if not os.access(target, os.W_OK | os.X_OK):
        raise UsageError(f"--out: {target} is not writable")


def _selection(args: argparse.Namespace, spec: DatasetSpec) -> Optional[list[int]]:
    if args.shards:
        return parse_shards(args.shards, spec.num_shards)
    if args.shard:
        return parse_part(args.shard, spec.num_shards)
    return None


def _open_source(args: argparse.Namespace):
    if args.url:
        token = args.token or os.environ.get("GANSERVE_API_TOKEN") or None
        return HttpSource(args.url, args.model, token, args.timeout, args.retries, args.backoff, args.workers)
    settings = load_settings()  # the draw bound of filters must be the one the server would use
    if args.ray is not None:  # the driver only checks the folder and reads the card: one thread, CPU
        return open_local(args.model_dir, "cpu", 1, settings.max_draws_factor)
    return open_local(
        args.model_dir, args.device, args.threads or cpu_count(), settings.max_draws_factor, backend=args.backend
    )


def _on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt  # one path for Ctrl-C and `kill`: stop workers, remove temporaries


def run(args: argparse.Namespace) -> int:
    if args.labels_deprecated:
        print(
            "warning: --labels is deprecated: it stores D's realness, now --realness (class labels: --classes)",
            file=sys.stderr,
        )
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    source, job, running = None, None, False
    try:
        _check_options(args)
        try:
            store = open_storage(args.out, _storage_options(args))
        except StorageError as e:
            raise UsageError(str(e).removeprefix("--out: ")) from None
        _check_output(store)
        source = _open_source(args)
        card = source.card
        spec = _spec(
            args,
            card.name,
            card.generator_sha256,
            source.max_draws_factor if _filtered(args) else 1,
            class_spec(args.classes, card.condition),
            card_drs_gamma(card),
        )
        _check_limits(source, spec)
        if (spec.filter.active or spec.realness) and not card.has_discriminator:
            raise UsageError(
                f"--realness/--min-realness/--drs: model {card.name!r} has no discriminator, so no realness "
                "to filter or label by"
            )
        if spec.edit:
            _check_edit(spec.edit, source)
        if spec.truncation_psi is not None and not card.is_style:
            raise UsageError(f"--truncation-psi: model {card.name!r} is a single-graph generator (use --truncation)")
        if spec.truncation is not None and card.is_style:
            raise UsageError(f"--truncation: model {card.name!r} is style-based: truncate in w with --truncation-psi")
        if (spec.dtype == "uint8" or spec.format == "png" or spec.encoding == "png") and card.sample.kind != "image":
            raise UsageError(f"--format/--dtype: {card.name} makes {card.sample.kind}s; only images go to uint8 or png")
        shards = _selection(args, spec)
        existing = mf.read_manifest(store) if store.exists() else None
        if existing is not None:
            mf.check_same_dataset(existing, spec, store)
        store.ensure()
        job = _job(args, source, spec, store)
        print(
            f"{spec.num_shards} shard(s) of up to {spec.shard_size} from {job.source_description} into {store}",
            file=sys.stderr,
        )
        running = True
        result = job.run(shards)
    except (UsageError, PlanError, SourceError, mf.ManifestError, SettingsError, StorageError) as e:
        # Before the run these are bad arguments; during it (a server gone), a failed run.
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED if running else EXIT_USAGE
    except (KeyboardInterrupt, Interrupted):
        print("interrupted: no partial shard was left; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:
        print(f"error: {e.filename or args.out}: {e.strerror or e}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
        if source is not None:
            source.close()
        if job is not None:
            job.close()
    totals = result.manifest.totals
    rate = result.samples_made / result.seconds if result.seconds else 0.0
    print(
        f"made {len(result.made)} shard(s), repaired {len(result.repaired)}, skipped {len(result.skipped)} "
        f"complete; {totals.complete}/{totals.shards} shards, {totals.samples} samples "
        f"({totals.drawn} drawn) in {store}/{mf.MANIFEST}; {rate:,.0f} samples/s"
    )
    return 0


def _job(args: argparse.Namespace, source: Source, spec: DatasetSpec, store: Storage) -> Job:
    """The local/HTTP job, or with --ray the same job with its shards sent to Ray actors."""
    if args.ray is None:
        return Job(source, spec, store, args.workers, progress=not args.quiet)
    try:
        from service.datasets.ray_job import RayJob
    except ImportError as e:
        raise UsageError(f"--ray: Ray is not installed ({e}); pip install 'ganserve[ray]'") from None
    try:
        return RayJob.start(
            args.ray,
            args.model_dir,
            source,
            spec,
            store,
            workers=args.workers,
            threads=args.threads,
            device=args.device,
            progress=not args.quiet,
        )
    except SourceError:
        raise
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:  # ray.init's ways of failing
        raise UsageError(f"--ray: cannot run on Ray at {args.ray}: {type(e).__name__}: {e}") from None


def _edits(text: str | None) -> list[tuple[str, float]] | None:
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


def _check_edit(moves: list[tuple[str, float]], source) -> None:
    """Every direction must be one the model has (its directions.json, or GET /models over HTTP)."""
    known = getattr(source, "directions", None)
    if known is None:
        return  # a source that cannot list them: the server refuses an unknown one, naming it
    for name, _ in moves:
        if name not in known:
            raise UsageError(f"--edit: {name!r} is not a direction of the model ({', '.join(known) or 'none'})")
