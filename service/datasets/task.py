"""The server-side dataset job, behind the `generate_dataset` task of service.py.

`POST /generate_dataset/submit` with a `DatasetRequest` starts it, `GET /generate_dataset/status`
and `/get` follow it (BentoML's task routes). It writes into GANSERVE_OUTPUT_DIR/<name> with the
models the server has already loaded, and answers the manifest. BentoML keeps task results in a
file that is deleted when the server restarts: the shards and manifest.json on the volume are the
durable result, and submitting the same request again resumes or verifies them.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Literal, Optional

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from ..encoding import json_bytes
from ..engine import Engine
from ..errors import RequestError
from ..latents import MAX_SEED
from ..settings import Settings
from . import manifest as mf
from .job import Job
from .plan import MAX_BLOCK_SIZE, MAX_SAMPLES, MAX_SHARD_SIZE, DatasetSpec, PlanError, parse_shards
from .sources import LocalSource

log = logging.getLogger("ganserve.datasets")
_busy: set[str] = set()  # datasets being written by this worker: one job per folder at a time
_busy_lock = threading.Lock()


class DatasetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="the dataset's folder under GANSERVE_OUTPUT_DIR")
    model: Optional[str] = Field(None, min_length=1, max_length=64, description="default: the service's default model")
    samples: Annotated[int, Ge(1), Le(MAX_SAMPLES)]
    shard_size: Annotated[int, Ge(1), Le(MAX_SHARD_SIZE)] = 10_000
    block_size: Annotated[int, Ge(1), Le(MAX_BLOCK_SIZE)] = 1024
    seed: Annotated[int, Ge(0), Le(MAX_SEED)] = 0
    format: Literal["npy", "png"] = "npy"
    dtype: Optional[Literal["float32", "uint8"]] = Field(None, description="default: float32 for npy, uint8 for png")
    realness: bool = Field(False, description="store D's realness of each row beside each shard")
    labels: bool = Field(False, description="deprecated alias of `realness`")
    classes: Optional[str] = Field(None, max_length=10_000, description=(
        "a conditional model's class labels, stored beside each shard: balanced, uniform (the default) or "
        "classes with proportions like 3:1,7:3"))
    truncation: Optional[Annotated[float, Field(gt=0, le=100)]] = None
    min_realness: Optional[Annotated[float, Ge(0), Le(1)]] = None
    drs: bool = False
    drs_gamma: Annotated[float, Ge(-50), Le(50)] = 0.0
    shards: Optional[str] = Field(None, max_length=1000, description="only these shards, e.g. 17-20 or 0,3,5-9")


def _classes(policy: Optional[str], model) -> Optional[dict]:
    from ..commands.generate import UsageError, class_spec

    try:
        return class_spec(policy, model.card.condition)
    except UsageError as e:
        raise RequestError("classes", str(e).removeprefix("--classes: ")) from None


def generate(engine: Engine, settings: Settings, req: DatasetRequest) -> Response:
    """Make (or resume) the dataset and answer its manifest as JSON."""
    if settings.output_dir is None:
        raise RequestError("name", "this server writes no datasets: GANSERVE_OUTPUT_DIR is not set", 503)
    model = engine.get(req.model)
    try:
        spec = DatasetSpec(
            model=model.name, model_version=model.card.files["generator"].sha256, base_seed=req.seed,
            samples=req.samples, shard_size=req.shard_size, block_size=req.block_size, truncation=req.truncation,
            filter={"min_realness": req.min_realness, "drs": req.drs, "drs_gamma": req.drs_gamma},
            max_draws_factor=settings.max_draws_factor if req.min_realness is not None or req.drs else None,
            format=req.format, dtype=req.dtype or ("uint8" if req.format == "png" else "float32"),
            realness=req.realness or req.labels, classes=_classes(req.classes, model))
        shards = parse_shards(req.shards, spec.num_shards) if req.shards else None
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        raise RequestError(".".join(map(str, err["loc"])) or "body", err["msg"].removeprefix("Value error, ")) from None
    except PlanError as e:
        raise RequestError("shards", e.problem) from None
    if spec.dtype == "uint8" and model.card.sample.kind != "image":
        raise RequestError("format", f"{model.name} makes {model.card.sample.kind}s; only images go to uint8 or png")
    folder = settings.output_dir / req.name
    with _busy_lock:
        if req.name in _busy:
            raise RequestError("name", f"a job is already writing dataset {req.name!r}", 409)
        _busy.add(req.name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        source = LocalSource(model, settings.max_draws_factor, f"server model {model.name}")
        log.info("dataset %s: %d shard(s) into %s", req.name, spec.num_shards, folder)
        result = Job(source, spec, folder, workers=2, progress=False, say=log.warning).run(shards)
    except mf.ManifestError as e:
        raise RequestError("name", str(e).replace(str(settings.output_dir) + "/", ""), 409) from None
    except OSError as e:
        raise RequestError("name", f"cannot write {req.name}: {e.strerror or e}", 500) from None
    finally:
        with _busy_lock:
            _busy.discard(req.name)
    log.info("dataset %s: made %d, repaired %d, skipped %d shard(s) in %.1f s", req.name, len(result.made),
             len(result.repaired), len(result.skipped), result.seconds)
    return Response(json_bytes(result.manifest.model_dump(mode="json")), media_type="application/json")
