"""Pack ONNX graphs made anywhere into a model folder the service loads.

The folder is built under a temporary name beside its target and verified there by the engine
itself (checksums, signatures against the card, a warm-up whose shapes must match), then renamed
into place: a refusal at any step leaves nothing behind, and a folder `pack` wrote always loads.
"""

from __future__ import annotations

import re
import shutil
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import onnxruntime as ort

from models.card import (
    CARD_FILE,
    GRAPH_FILES,
    NAME_PATTERN,
    SCHEMA_VERSION,
    STYLE_SCHEMA_VERSION,
    CardError,
    GraphSignature,
    ModelCard,
    OnnxInfo,
    Realness,
    Source,
    SourceFile,
    Style,
    file_entry,
    now_utc,
    sha256_of,
    write_card,
)
from service.core import encoding, latents
from service.packing.declare import Declarations, PackError, reconcile
from service.packing.onnx_header import HeaderError, read_versions
from service.packing.style import W_AVG_FILE, style_of
from service.runtime.engine import Engine, EngineError
from service.runtime.model import LoadedModel, observed_signature

PREVIEW_FILE = "samples.png"
PREVIEW_IMAGES = 64  # an 8 x 8 grid, as export writes
REALNESS_SAMPLES = 1000  # G's samples over which D's max logit (for DRS) is measured
CHUNK = 250  # rows per graph run while measuring
# G's samples may overshoot the declared range a little (a linear output, float error); a
# declaration that most values contradict is a wrong declaration (tanh's [-1, 1] declared as [0, 1]).
RANGE_SLACK = 0.05  # of the range's width
RANGE_MAX_OUTSIDE = 0.01  # fraction of values beyond the slack


@dataclass(frozen=True)
class Graphs:
    """A single-graph generator, or a style-based one's mapping, synthesis and w_avg.npy; and an
    optional discriminator."""

    generator: Optional[Path] = None
    discriminator: Optional[Path] = None
    mapping: Optional[Path] = None
    synthesis: Optional[Path] = None
    w_avg: Optional[Path] = None

    @property
    def is_style(self) -> bool:
        return self.mapping is not None or self.synthesis is not None or self.w_avg is not None

    def paths(self) -> dict[str, Path]:
        """Graph role -> the file given, after checking that one kind of generator is given whole."""
        if self.is_style:
            if self.generator is not None:
                raise PackError("--generator", "give a generator, or --mapping and --synthesis, not both")
            for flag, value in (("--mapping", self.mapping), ("--synthesis", self.synthesis), ("--w-avg", self.w_avg)):
                if value is None:
                    raise PackError(flag, "required for a style-based model (--mapping, --synthesis and --w-avg)")
            roles = {"mapping": self.mapping, "synthesis": self.synthesis}
        else:
            if self.generator is None:
                raise PackError(
                    "--generator", "required (or --mapping, --synthesis and --w-avg for a style-based model)"
                )
            roles = {"generator": self.generator}
        if self.discriminator is not None:
            roles["discriminator"] = self.discriminator
        return roles


def _read_signature(path: Path, flag: str) -> GraphSignature:
    if not path.is_file():
        raise PackError(flag, f"{path}: no such file")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types are not importable API
        raise PackError(
            flag,
            f"{path}: onnxruntime cannot load it ({str(e).strip().splitlines()[-1]}); a graph with "
            "its weights in a separate file must be saved as one file",
        ) from None
    try:
        return observed_signature(session, path)
    except CardError as e:
        raise PackError(flag, e.problem) from None


def _source(graphs: Graphs, decl: Declarations) -> Source:
    files = {}
    for role in ("generator", "mapping", "synthesis", "w_avg", "discriminator"):
        path = getattr(graphs, role)
        if path is not None:
            files[role] = SourceFile(path=str(path.resolve()), sha256=sha256_of(path), bytes=path.stat().st_size)
    return Source(
        kind="onnx",
        files=files,
        declarations=decl.record(),
        tool=f"ganserve `python -m service pack` (onnxruntime {ort.__version__})",
    )


def _versions(paths: dict[str, Path]) -> tuple[int, int]:
    """The card's (opset, ir_version): the highest of the graphs', what a runtime must support."""
    found = []
    for role, path in paths.items():
        try:
            found.append(read_versions(path))
        except HeaderError as e:
            raise PackError(f"--{role}", f"{path}: {e}") from None
    return max(v[1] for v in found), max(v[0] for v in found)


def _classes_for(model: LoadedModel, n: int) -> Optional[np.ndarray]:
    """Every class in turn, for a conditional model's preview and realness."""
    return np.arange(n) % model.card.condition.classes if model.conditional else None


def _draw(model: LoadedModel, n: int, seed: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """n samples of G (and D's logits on them) through the engine, as the service runs them."""
    z = latents.draw(latents.generator(seed), model.card.latent, n)  # (n, dim)
    c = _classes_for(model, n)
    xs, logits = [], []
    for i in range(0, n, CHUNK):
        ci = None if c is None else c[i : i + CHUNK]
        x = model.generate_inline(z[i : i + CHUNK], ci)  # (chunk, *sample_shape)
        xs.append(x)
        if model.has_discriminator:
            logits.append(model.logits_inline(x, ci))  # (chunk,)
    x = np.concatenate(xs)
    return x, (np.concatenate(logits) if logits else None)


def _check_values(x: np.ndarray, logits: Optional[np.ndarray], value_range: tuple[float, float]) -> list[str]:
    """Refuse non-finite output or a value range that G's samples contradict; return warnings."""
    if not np.isfinite(x).all():
        raise PackError("--generator", "G's samples are not all finite")
    lo, hi = value_range
    slack = RANGE_SLACK * (hi - lo)
    outside = float(np.mean((x < lo - slack) | (x > hi + slack)))
    if outside > RANGE_MAX_OUTSIDE:
        raise PackError(
            "--value-range",
            f"{lo:g},{hi:g} contradicts G's samples: {outside:.0%} of their values lie "
            f"outside it (they span {float(x.min()):.3g} .. {float(x.max()):.3g})",
        )
    warnings = []
    if logits is not None:
        if not np.isfinite(logits).all():
            raise PackError("--discriminator", "D's outputs on G's samples are not all finite")
        if logits.min() >= 0.0 and logits.max() <= 1.0:
            warnings.append(
                "every output of D on G's samples lies in [0, 1]: if D ends in a sigmoid, its outputs are "
                "probabilities, not the logits the card needs; re-export D without the sigmoid, or pack "
                "its torch module with `python -m training pack --discriminator-output probability`"
            )
    return warnings


def _verified(folder: Path) -> LoadedModel:
    """The engine's own checks on the folder, exactly as the service will load it."""
    try:
        engine = Engine.from_folder(folder, device="cpu")
    except EngineError as e:
        raise PackError("--synthesis" if (folder / W_AVG_FILE).exists() else "--generator", str(e)) from None
    engine.executor.shutdown(wait=False)  # nothing here runs through its threads
    return engine.models[folder.name]


def _move_into_place(built: Path, target: Path) -> None:
    old = None
    if target.exists():  # only reached with force
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        target.rename(old)
    built.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_target(name: str, out_dir: Path, force: bool) -> Path:
    if not re.match(NAME_PATTERN, name):
        raise PackError(
            "--name", f"{name!r} is not a model name (lowercase letters, digits, '-', '_'; 1-64 characters)"
        )
    target = out_dir / name
    if target.exists() and not force:
        raise PackError("--name", f"{target} exists; pass --force to replace it")
    return target


def pack(
    graphs: Graphs,
    decl: Declarations,
    out_dir: Path | str,
    *,
    force: bool = False,
    seed: int = 0,
    realness_samples: int = REALNESS_SAMPLES,
    source: Optional[Source] = None,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> Path:
    """Write `out_dir/<name>/` from the graphs and declarations; return it. PackError on refusal."""
    out_dir = Path(out_dir)
    target = check_target(decl.name, out_dir, force)
    paths = graphs.paths()
    signatures = {role: _read_signature(path, f"--{role}") for role, path in paths.items()}
    style_info = None
    if graphs.is_style:
        style_info, w_avg = style_of(signatures["mapping"], signatures["synthesis"], graphs.w_avg)
        # z [, c] -> x as one generator would take and give them: what reconcile checks.
        composed = GraphSignature(inputs=signatures["mapping"].inputs, outputs=signatures["synthesis"].outputs)
        shape = reconcile(decl, composed, signatures.get("discriminator"))
    else:
        shape = reconcile(decl, signatures["generator"], signatures.get("discriminator"))
    opset, ir_version = _versions(paths)
    source = source or _source(graphs, decl)

    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".pack-{decl.name}-{uuid.uuid4().hex[:8]}"  # hidden: the service skips it
    folder = staging / decl.name  # the card's name must be its folder's
    folder.mkdir(parents=True)
    try:
        for role, path in paths.items():
            shutil.copyfile(path, folder / GRAPH_FILES[role])
        files = {role: file_entry(folder / GRAPH_FILES[role]) for role in paths}
        has_d = "discriminator" in paths
        style = None
        if style_info is not None:
            np.save(folder / W_AVG_FILE, w_avg, allow_pickle=False)
            style = Style(**style_info, w_avg=file_entry(folder / W_AVG_FILE))

        def card(realness: Optional[Realness]) -> ModelCard:
            return ModelCard(
                schema_version=STYLE_SCHEMA_VERSION if style is not None else SCHEMA_VERSION,
                style=style,
                name=decl.name,
                description=decl.description,
                dataset=decl.dataset,
                latent=shape.latent,
                sample=shape.sample,
                files=files,
                onnx=OnnxInfo(opset=opset, ir_version=ir_version, **signatures),
                realness=realness,
                source=source,
                condition=shape.condition,
                created_at=now_utc(),
            )

        # A first card with a provisional realness lets the engine load the folder; the measured
        # one replaces it below (the graphs, and so the checksums, stay as they are).
        write_card(folder, card(Realness(max_logit=0.0, measured_on=1) if has_d else None))
        model = _verified(folder)
        x, logits = _draw(model, realness_samples, seed)
        for line in _check_values(x, logits, tuple(shape.sample.value_range)):
            say(f"pack: warning: {line}")
        realness = Realness(max_logit=float(logits.max()), measured_on=len(logits)) if has_d else None
        write_card(folder, card(realness))
        if shape.sample.kind == "image":
            (folder / PREVIEW_FILE).write_bytes(
                encoding.png_grid(x[:PREVIEW_IMAGES], tuple(shape.sample.value_range), 8)
            )
        _verified(folder)  # the final folder, as the service will load it
        _move_into_place(folder, target)
    except CardError as e:
        flag = "--synthesis" if graphs.is_style else "--generator"
        raise PackError(flag, str(e).replace(str(folder), str(target))) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


__all__ = ["CARD_FILE", "Declarations", "Graphs", "PackError", "check_target", "pack"]
