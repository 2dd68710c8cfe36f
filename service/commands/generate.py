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
import os
import signal
import sys
from pathlib import Path
from typing import Optional

from service.commands.generate_args import (  # noqa: F401  (add_arguments: the command's flags)
    UsageError,
    add_arguments,
    check_edit,
    check_options,
    dataset_spec,
    filtered,
    storage_options,
)
from service.core.sampling import card_drs_gamma
from service.datasets import manifest as mf
from service.datasets.job import Interrupted, Job
from service.datasets.plan import DatasetSpec, PlanError, class_spec, parse_part, parse_shards
from service.datasets.sources import HttpSource, Source, SourceError, open_local
from service.datasets.storage import LocalStorage, Storage, StorageError, open_storage
from service.settings import SettingsError, cpu_count, load_settings

EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


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
        check_options(args)
        try:
            store = open_storage(args.out, storage_options(args))
        except StorageError as e:
            raise UsageError(str(e).removeprefix("--out: ")) from None
        _check_output(store)
        source = _open_source(args)
        card = source.card
        spec = dataset_spec(
            args,
            card.name,
            card.generator_sha256,
            source.max_draws_factor if filtered(args) else 1,
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
            check_edit(spec.edit, source)
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
