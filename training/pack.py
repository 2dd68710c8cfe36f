"""Pack a torch generator (and discriminator) written anywhere: the module from its factory, its
weights from a state dict (safetensors, or torch.load with weights_only=True: tensors, no
pickled objects), exported to ONNX by our exporter (onnx_io.export_inputs) and checked for parity
with torch at several batch sizes. The ONNX files then go to `python -m service pack` in a
subprocess, which writes and verifies the model folder: one packing path, and training/ never
imports the service (docs/DESIGN.md).

A discriminator that ends in a sigmoid (the tutorials' do) gives probabilities; the card needs
logits. With `--discriminator-output probability` the final nn.Sigmoid module is replaced by the
identity, which gives D's exact logit; a sigmoid applied otherwise is inverted with
logit(clamp(p, eps, 1 - eps)), exact except where the sigmoid had saturated.
"""

from __future__ import annotations

import importlib
import inspect
import json
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from models.card import Source, SourceFile, sha256_of
from models.packing import PackError, common_flags, service_pack
from training.onnx_io import OPSET, OnnxExportError, cpu_session, export_inputs, save_graph

PARITY_BATCHES = (1, 3, 16)
G_TOLERANCE = 1e-4  # max abs difference of G's samples, torch vs onnxruntime
D_TOLERANCE = 1e-3  # of D's logits
PROBABILITY_EPS = 1e-6


def load_factory(spec: str, flag: str) -> nn.Module:
    """`package.module:factory` -> the module the factory (or class) returns when called with no arguments."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise PackError(flag, f"{spec!r} is not package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise PackError(flag, f"cannot import {module_name!r} ({e})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise PackError(flag, f"{module_name!r} has no callable {attr!r}")
    made = factory()
    if not isinstance(made, nn.Module):
        raise PackError(flag, f"{spec} returned {type(made).__name__}, not a torch nn.Module")
    return made


def load_state_dict(path: Path, flag: str) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or from .pt/.pth with torch.load(weights_only=True)."""
    if not path.is_file():
        raise PackError(flag, f"{path}: no such file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors and torch raise many types for a bad file
        raise PackError(flag, f"{path}: not a readable state dict ({str(e).strip().splitlines()[0]})") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        keys = list(state)[:6] if isinstance(state, dict) else type(state).__name__
        raise PackError(
            flag,
            f"{path}: expected a state dict (parameter name -> tensor), got {keys}; save module.state_dict() alone",
        )
    return state


def load_module(spec: str, weights: Path, module_flag: str, weights_flag: str) -> nn.Module:
    module = load_factory(spec, module_flag)
    try:
        module.load_state_dict(load_state_dict(weights, weights_flag), strict=True)
    except RuntimeError as e:
        raise PackError(
            weights_flag, f"{weights} does not fit {spec}: {str(e).splitlines()[0]} ({' '.join(str(e).split())[:300]})"
        ) from None
    return module.float().eval()  # eval: batch norm uses its running statistics, dropout is off


class _Generator(nn.Module):
    """z (N, *latent_shape) [, c (N,) int64] -> x: the user's G with our input names."""

    def __init__(self, module: nn.Module, conditional: bool):
        super().__init__()
        self.module, self.conditional = module, conditional

    def forward(self, z, c=None):
        return self.module(z, c) if self.conditional else self.module(z)


class _Discriminator(nn.Module):
    """x [, c] -> (N, 1) logits, whatever shape (N, 1) or (N,) the user's D returns."""

    def __init__(self, module: nn.Module, conditional: bool, invert_sigmoid: bool):
        super().__init__()
        self.module, self.conditional, self.invert_sigmoid = module, conditional, invert_sigmoid

    def forward(self, x, c=None):
        out = self.module(x, c) if self.conditional else self.module(x)
        if self.invert_sigmoid:
            out = torch.logit(out.clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS))
        return out.reshape(-1, 1)  # (N, 1)


def _last_module(module: nn.Module, *inputs) -> Optional[str]:
    """The name of the last leaf module that ran in module(*inputs)."""
    order: list[str] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, _o, name=name: order.append(name))
        for name, m in module.named_modules()
        if not list(m.children())
    ]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return order[-1] if order else None


def logit_discriminator(module: nn.Module, inputs: tuple, conditional: bool) -> tuple[nn.Module, str]:
    """A D that outputs probabilities, as one that outputs logits; and how it was converted."""
    with torch.no_grad():
        p = module(*inputs).reshape(-1)
    last = _last_module(module, *inputs)
    if last and isinstance(module.get_submodule(last), nn.Sigmoid):
        module.set_submodule(last, nn.Identity())
        with torch.no_grad():
            logit = module(*inputs).reshape(-1)
        if torch.allclose(torch.sigmoid(logit), p, atol=1e-5):
            return _Discriminator(module, conditional, False), f"removed its final nn.Sigmoid ({last}): exact logits"
        module.set_submodule(last, nn.Sigmoid())  # the sigmoid was not what D returned: undo
    return _Discriminator(module, conditional, True), (
        f"no final nn.Sigmoid module found; logits as logit(clamp(p, {PROBABILITY_EPS:g}, 1 - {PROBABILITY_EPS:g}))"
    )


def _parity(module: nn.Module, path: Path, make_inputs, names: list[str], tolerance: float, flag: str) -> None:
    session = cpu_session(path)
    for n in PARITY_BATCHES:
        inputs = make_inputs(n)
        with torch.no_grad():
            want = module(*inputs).numpy()
        got = session.run(None, {name: t.numpy() for name, t in zip(names, inputs)})[0]
        if got.shape != want.shape or not np.allclose(got, want, atol=tolerance, rtol=0):
            diff = float(np.abs(got - want).max()) if got.shape == want.shape else f"shape {got.shape} vs {want.shape}"
            raise PackError(flag, f"the exported graph disagrees with torch at batch {n} (max difference {diff})")


def _source_file(path: Path) -> SourceFile:
    return SourceFile(path=str(path.resolve()), sha256=sha256_of(path), bytes=path.stat().st_size)


def export_for_pack(
    workdir: Path,
    *,
    generator: str,
    weights: Path,
    discriminator: Optional[str],
    discriminator_weights: Optional[Path],
    discriminator_output: str,
    latent_shape: tuple[int, ...],
    classes: int,
    declarations: dict,
    seed: int = 0,
) -> tuple[Path, Optional[Path], Source]:
    """Export G (and D) into `workdir`; return their paths and the card's source record."""
    torch.manual_seed(seed)
    conditional = classes > 0
    G = _Generator(load_module(generator, weights, "--torch-generator", "--weights"), conditional).eval()

    def g_inputs(n: int) -> tuple:
        z = torch.randn(n, *latent_shape, generator=torch.Generator().manual_seed(seed + n))
        return (z, torch.arange(n) % classes) if conditional else (z,)

    g_names = ["z", "c"] if conditional else ["z"]
    try:
        with torch.no_grad():
            G(*g_inputs(2))
    except Exception as e:
        raise PackError(
            "--latent-shape",
            f"the generator does not take z of shape [N, {', '.join(map(str, latent_shape))}]"
            f"{' with classes' if conditional else ''}: {str(e).splitlines()[0]}",
        ) from None
    g_path = workdir / "generator.onnx"
    save_graph(_export(G, dict(zip(g_names, g_inputs(2))), "x", "--torch-generator"), g_path)
    _parity(G, g_path, g_inputs, g_names, G_TOLERANCE, "--torch-generator")
    files = {"generator_weights": _source_file(weights)}
    _add_module_source(files, "generator_module", G.module)
    notes = {}

    d_path = None
    if discriminator is not None:
        D_user = load_module(discriminator, discriminator_weights, "--torch-discriminator", "--discriminator-weights")

        def d_inputs(n: int) -> tuple:
            with torch.no_grad():
                x = G(*g_inputs(n))
            return (x, torch.arange(n) % classes) if conditional else (x,)

        try:
            if discriminator_output == "probability":
                D, notes["discriminator_conversion"] = logit_discriminator(D_user, d_inputs(2), conditional)
            else:
                D = _Discriminator(D_user, conditional, False)
            with torch.no_grad():
                out = D(*d_inputs(2))
        except PackError:
            raise
        except Exception as e:
            raise PackError(
                "--torch-discriminator", f"it does not take G's samples: {str(e).splitlines()[0]}"
            ) from None
        if out.shape != (2, 1):
            raise PackError(
                "--torch-discriminator", f"returns {out.numel()} values for 2 samples; one per sample expected"
            )
        D.eval()
        d_names = ["x", "c"] if conditional else ["x"]
        d_path = workdir / "discriminator.onnx"
        save_graph(_export(D, dict(zip(d_names, d_inputs(2))), "logit", "--torch-discriminator"), d_path)
        _parity(D, d_path, d_inputs, d_names, D_TOLERANCE, "--torch-discriminator")
        files["discriminator_weights"] = _source_file(discriminator_weights)
        _add_module_source(files, "discriminator_module", D_user)

    source = Source(
        kind="torch",
        files=files,
        declarations={**declarations, **notes},
        tool=f"ganserve `python -m training pack` (torch {torch.__version__}, dynamo exporter, opset {OPSET})",
    )
    return g_path, d_path, source


def _export(module: nn.Module, examples: dict, output: str, flag: str):
    try:
        return export_inputs(module, examples, output)
    except (OnnxExportError, ValueError) as e:
        raise PackError(flag, f"export to ONNX failed: {e}") from None
    except Exception as e:  # torch.export raises many kinds for code it cannot trace
        raise PackError(flag, f"export to ONNX failed: {type(e).__name__}: {str(e).strip().splitlines()[0]}") from None


def _add_module_source(files: dict, role: str, module: nn.Module) -> None:
    """The file the module's class is defined in, with its sha256: the code the weights fit."""
    try:
        path = inspect.getsourcefile(type(module))
    except TypeError:
        return
    if path and Path(path).is_file():
        files[role] = _source_file(Path(path))


def pack_torch(args, declaration_flags: list[str], declarations: dict) -> int:
    """The torch path of `python -m training pack`: export, then the service's ONNX pack."""
    shape = declarations.get("latent_shape") or (
        (declarations["latent_dim"],) if declarations.get("latent_dim") else None
    )
    if shape is None:
        raise PackError("--latent-dim", "required with --torch-generator (or --latent-shape): a module cannot say it")
    if (Path(args.out) / args.name).exists() and not args.force:  # before minutes of export, not after
        raise PackError("--name", f"{Path(args.out) / args.name} exists; pass --force to replace it")
    classes = len(declarations["classes"]) if declarations.get("classes") else 0
    if (args.torch_discriminator is None) != (args.discriminator_weights is None):
        raise PackError("--discriminator-weights", "goes with --torch-discriminator, and the reverse")
    record = {k: (list(v) if isinstance(v, tuple) else v) for k, v in declarations.items() if v is not None}
    record.update(
        torch_generator=args.torch_generator,
        torch_discriminator=args.torch_discriminator,
        discriminator_output=args.discriminator_output,
    )
    with tempfile.TemporaryDirectory(prefix="ganserve-pack-") as tmp:
        tmp = Path(tmp)
        g_path, d_path, source = export_for_pack(
            tmp,
            generator=args.torch_generator,
            weights=args.weights,
            discriminator=args.torch_discriminator,
            discriminator_weights=args.discriminator_weights,
            discriminator_output=args.discriminator_output,
            latent_shape=tuple(shape),
            classes=classes,
            declarations={k: v for k, v in record.items() if v is not None},
            seed=args.seed,
        )
        (tmp / "source.json").write_text(json.dumps(source.model_dump(mode="json")), encoding="utf-8")
        argv = ["--generator", str(g_path), *declaration_flags, "--source-record", str(tmp / "source.json")]
        if d_path is not None:
            argv += ["--discriminator", str(d_path)]
        return service_pack(argv + common_flags(args))
