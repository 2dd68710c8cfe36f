"""The server-side dataset job, behind the `generate_dataset` task of service.py.

`POST /generate_dataset/submit` with a `DatasetRequest` starts it, `GET /generate_dataset/status`
and `/get` follow it (BentoML's task routes). It writes into GANSERVE_OUTPUT_DIR/<name> with the
models the server has already loaded, and answers the manifest. BentoML keeps task results in a
file that is deleted when the server restarts: the shards and manifest.json on the volume are the
durable result, and submitting the same request again resumes or verifies them.

Refusals come at submit, before anything is written (routes.py checks `plan` there, and the job
checks again as it starts): 403 when GANSERVE_OUTPUT_DIR is unset, 422 when the dataset would
pass the disk budget (datasets/limits.py, checked again before each shard), 409 when the dataset
is being written or the server (all its workers) runs GANSERVE_DATASET_JOBS jobs already
(datasets/control.py, slots.py).
`PUT /generate_dataset/cancel?task_id=...` stops a job after its current block (control.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from service.core.encoding import json_bytes
from service.core.latents import MAX_SEED
from service.core.problems import RequestError
from service.core.sampling import card_drs_gamma
from service.core.schemas import Edits
from service.datasets import control, limits
from service.datasets import manifest as mf
from service.datasets.job import Interrupted, Job
from service.datasets.plan import (
    MAX_BLOCK_SIZE,
    MAX_SAMPLES,
    MAX_SHARD_SIZE,
    DatasetSpec,
    FilterSpec,
    PlanError,
    class_spec,
    parse_shards,
)
from service.datasets.sources import LocalSource, SourceError
from service.runtime import admission
from service.runtime.engine import Engine
from service.runtime.model import LoadedModel
from service.settings import Settings

log = logging.getLogger("ganserve.datasets")


class DatasetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="the dataset's folder under GANSERVE_OUTPUT_DIR"
    )
    model: Optional[str] = Field(None, min_length=1, max_length=64, description="default: the service's default model")
    samples: Annotated[int, Ge(1), Le(MAX_SAMPLES)]
    shard_size: Annotated[int, Ge(1), Le(MAX_SHARD_SIZE)] = 10_000
    block_size: Annotated[int, Ge(1), Le(MAX_BLOCK_SIZE)] = 1024
    seed: Annotated[int, Ge(0), Le(MAX_SEED)] = 0
    format: Literal["npy", "png"] = "npy"
    dtype: Optional[Literal["float32", "uint8"]] = Field(None, description="default: float32 for npy, uint8 for png")
    realness: bool = Field(False, description="store D's realness of each row beside each shard")
    labels: bool = Field(False, description="deprecated alias of `realness`")
    classes: Optional[str] = Field(
        None,
        max_length=10_000,
        description=(
            "a conditional model's class labels, stored beside each shard: balanced, uniform (the default) or "
            "classes with proportions like 3:1,7:3"
        ),
    )
    truncation: Optional[Annotated[float, Field(gt=0, le=100)]] = None
    truncation_psi: Optional[Annotated[float, Field(ge=-1, le=2)]] = Field(
        None, description="a style-based model: truncation in w, as /sample's truncation_psi"
    )
    edit: Edits = Field(
        None, description="moves along the model's editing directions, as /sample's edit: an edited dataset"
    )
    min_realness: Optional[Annotated[float, Ge(0), Le(1)]] = None
    drs: bool = False
    drs_gamma: Optional[Annotated[float, Ge(-50), Le(50)]] = Field(
        None,
        description="DRS acceptance shift; default: the model card's, as /sample uses (the manifest records the value)",
    )
    shards: Optional[str] = Field(None, max_length=1000, description="only these shards, e.g. 17-20 or 0,3,5-9")


def _classes(policy: Optional[str], model) -> Optional[dict]:
    try:
        return class_spec(policy, model.card.condition)
    except PlanError as e:
        raise RequestError("classes", str(e).removeprefix("--classes: ")) from None


def _check_edit(model: LoadedModel, req: DatasetRequest) -> None:
    """The directions exist, and no filter is asked beside them (as /sample's edit checks them)."""
    if req.edit and (req.min_realness is not None or req.drs):
        raise RequestError("drs" if req.drs else "min_realness", "filters do not yet combine with edit")
    for i, move in enumerate(req.edit or []):
        if move.direction not in model.directions:
            known = ", ".join(model.directions) or "none: python -m training directions adds them"
            raise RequestError(
                f"edit.{i}.direction", f"{move.direction!r} is not a direction of {model.name} ({known})"
            )


@dataclass(frozen=True)
class Plan:
    model: LoadedModel
    spec: DatasetSpec
    shards: Optional[list[int]]
    folder: Path
    size: int  # estimated bytes still to write
    allowed: int  # the job's disk budget


def plan(engine: Engine, settings: Settings, req: DatasetRequest) -> Plan:
    """Every check that needs no write: the feature is on, the model, the spec, the disk budget.
    Made at submit (routes.py answers its refusals there) and again when the job starts."""
    if settings.output_dir is None:
        raise RequestError(
            "name",
            "this server writes no datasets: set GANSERVE_OUTPUT_DIR to a writable folder "
            "(a volume the server owns) to turn the generate_dataset task on",
            403,
        )
    model = engine.get(req.model)
    _check_edit(model, req)
    try:
        spec = DatasetSpec(
            model=model.name,
            model_version=model.card.generator_sha256,
            base_seed=req.seed,
            samples=req.samples,
            shard_size=req.shard_size,
            block_size=req.block_size,
            truncation=req.truncation,
            truncation_psi=req.truncation_psi,
            edit=[(move.direction, move.amount) for move in req.edit] if req.edit else None,
            filter=FilterSpec.asked(req.min_realness, req.drs, req.drs_gamma, card_drs_gamma(model.card)),
            max_draws_factor=settings.max_draws_factor if req.min_realness is not None or req.drs else None,
            format=req.format,
            dtype=req.dtype or ("uint8" if req.format == "png" else "float32"),
            realness=req.realness or req.labels,
            classes=_classes(req.classes, model),
        )
        shards = parse_shards(req.shards, spec.num_shards) if req.shards else None
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        raise RequestError(".".join(map(str, err["loc"])) or "body", err["msg"].removeprefix("Value error, ")) from None
    except PlanError as e:
        raise RequestError("shards", e.problem) from None
    if (spec.filter.active or spec.realness) and not model.has_discriminator:
        field = (
            "realness" if spec.realness and not spec.filter.active else ("drs" if spec.filter.drs else "min_realness")
        )
        raise RequestError(field, f"model {model.name!r} has no discriminator, so no realness to filter or label by")
    if spec.truncation_psi is not None and not model.is_style:
        raise RequestError("truncation_psi", f"model {model.name!r} is a single-graph generator (use truncation)")
    if spec.truncation is not None and model.is_style:
        raise RequestError("truncation", f"model {model.name!r} is style-based: truncate in w with truncation_psi")
    if spec.dtype == "uint8" and model.card.sample.kind != "image":
        raise RequestError("format", f"{model.name} makes {model.card.sample.kind}s; only images go to uint8 or png")
    folder = settings.output_dir / req.name
    total = limits.dataset_bytes(spec, model.card.sample.shape, shards)
    size = max(0, total - limits.existing_bytes(folder))  # a resumed dataset writes only what is missing
    allowed, why = limits.budget(settings.output_dir, settings.dataset_budget_bytes, settings.dataset_disk_share)
    if size > allowed:
        raise RequestError(
            "samples",
            f"the dataset would take about {limits.human(total)} ({total} bytes"
            f"{f', {limits.human(size)} still to write' if size != total else ''}), over this "
            f"server's budget of {limits.human(allowed)} ({why}): ask for fewer samples",
            422,
        )
    return Plan(model, spec, shards, folder, size, allowed)


def generate(engine: Engine, settings: Settings, req: DatasetRequest, task_id: Optional[str] = None) -> Response:
    """Make (or resume) the dataset and answer its manifest as JSON; a cancelled job answers
    `cancelled` with the shards it completed (they stay valid, and a rerun resumes)."""
    p = plan(engine, settings, req)
    with control.running(req.name, task_id, settings.output_dir, settings.dataset_jobs) as entry:
        if entry.cancelled:
            return _cancelled(req.name, p.folder, task_id)
        try:
            p.folder.mkdir(parents=True, exist_ok=True)
            source = LocalSource(
                p.model, settings.max_draws_factor, f"server model {p.model.name}", admission=admission.get()
            )  # blocks share the worker's budget with requests
            log.info(
                "dataset %s: %d shard(s), about %s, into %s",
                req.name,
                p.spec.num_shards,
                limits.human(p.size),
                p.folder,
            )
            guard = limits.ShardGuard(p.folder, p.spec, p.model.card.sample.shape, p.allowed)
            job = Job(source, p.spec, p.folder, workers=2, progress=False, say=log.warning, before_shard=guard)
            entry.attach(job)
            result = job.run(p.shards)
        except (Interrupted, SourceError):
            if entry.cancelled:
                return _cancelled(req.name, p.folder, task_id)
            raise
        except limits.DatasetTooLarge as e:
            raise RequestError("samples", f"stopped: {e.problem}; the shards written so far stay valid", 422) from None
        except mf.ManifestError as e:
            raise RequestError("name", str(e).replace(str(settings.output_dir) + "/", ""), 409) from None
        except OSError as e:
            raise RequestError("name", f"cannot write {req.name}: {e.strerror or e}", 500) from None
    log.info(
        "dataset %s: made %d, repaired %d, skipped %d shard(s) in %.1f s",
        req.name,
        len(result.made),
        len(result.repaired),
        len(result.skipped),
        result.seconds,
    )
    return Response(json_bytes(result.manifest.model_dump(mode="json")), media_type="application/json")


def _cancelled(name: str, folder: Path, task_id: Optional[str]) -> Response:
    log.warning("dataset %s: stopped on cancel (task %s)", name, task_id)
    try:
        complete = sorted(mf.read_manifest(folder).complete)
    except Exception:  # nothing written yet
        complete = []
    body = {
        "name": name,
        "status": "canceled",
        "complete_shards": complete,
        "note": "complete shards stay valid; submit the same request again to resume",
    }
    return Response(json_bytes(body), media_type="application/json")
