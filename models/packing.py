"""The pack command's declarations, as command-line flags: one table shared by `python -m service
pack` (ONNX graphs; no torch) and `python -m training pack` (torch modules, exported to ONNX and
handed to the former in a subprocess). Standard library only, like everything in `models/`.

`values(args)` gives the declarations as plain data (the fields of service/packing/declare.py's
`Declarations`); `forward(args)` gives them back as flags, for the subprocess.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path


class PackError(ValueError):
    """A refusal of `pack`: `flag` names the command-line flag at fault."""

    def __init__(self, flag: str, problem: str):
        self.flag, self.problem = flag, problem
        super().__init__(f"{flag}: {problem}")


# flag -> (argparse keyword arguments, how the value is written back as a flag)
DECLARATION_FLAGS: dict[str, dict] = {
    "--name": dict(required=True, help="the model's name: its folder under --out, and its name in URLs"),
    "--description": dict(default="", help="one line for people (GET /models shows it)"),
    "--dataset": dict(default="unspecified", help="what G was trained on (free text)"),
    "--latent-dim": dict(type=int, metavar="N", help="values per latent (default: read from G's z input)"),
    "--latent": dict(
        choices=("normal", "uniform"),
        default="normal",
        help="how z is drawn: N(0, 1), or U(low, high) with --latent-bounds (default -1,1)",
    ),
    "--latent-bounds": dict(metavar="LOW,HIGH", help="a uniform latent's bounds, e.g. -1,1"),
    "--latent-shape": dict(
        metavar="D,...",
        help="z's shape per sample as G takes it, e.g. 100,1,1 for DCGAN (default: read from G's z input)",
    ),
    "--sample-shape": dict(metavar="D,...", help="one sample's shape, e.g. 3,64,64 (default: read from G's output)"),
    "--value-range": dict(
        metavar="LOW,HIGH", help="the range of G's values, e.g. -1,1 for tanh, 0,1 for sigmoid (required)"
    ),
    "--kind": dict(choices=("image", "vector"), help="default: image for [1 or 3, H, W] samples, else vector"),
    "--classes": dict(metavar="K|NAME,...", help="a conditional G's classes: their number, or their names"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, kwargs in DECLARATION_FLAGS.items():
        parser.add_argument(flag, **kwargs)


def _numbers(text: str | None, flag: str, kind: type, count: int | None = None) -> tuple | None:
    if text is None:
        return None
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        raise PackError(flag, f"{text!r} is not a comma-separated list of {kind.__name__}s") from None
    if count is not None and len(values) != count:
        raise PackError(flag, f"expected {count} values, got {len(values)}")
    return values


def classes(text: str | None) -> tuple[str, ...] | None:
    """`--classes 10` -> ("0", ..., "9"); `--classes cat,dog` -> ("cat", "dog")."""
    if text is None:
        return None
    if re.fullmatch(r"\d+", text.strip()):
        return tuple(str(i) for i in range(int(text)))
    return tuple(name.strip() for name in text.split(","))


def values(args: argparse.Namespace) -> dict:
    """The declarations as plain data; PackError naming the flag for one that does not parse."""
    return {
        "name": args.name,
        "description": args.description,
        "dataset": args.dataset,
        "latent_dim": args.latent_dim,
        "latent": args.latent,
        "latent_bounds": _numbers(args.latent_bounds, "--latent-bounds", float, 2),
        "latent_shape": _numbers(args.latent_shape, "--latent-shape", int),
        "sample_shape": _numbers(args.sample_shape, "--sample-shape", int),
        "value_range": _numbers(args.value_range, "--value-range", float, 2),
        "kind": args.kind,
        "classes": classes(args.classes),
    }


def forward(args: argparse.Namespace) -> list[str]:
    """The declaration flags that were given, as argv for another `pack` command."""
    argv = []
    for flag in DECLARATION_FLAGS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            argv.append(f"{flag}={value}")  # `=`: values such as -1,1 must not read as flags
    return argv


def join_negative_values(argv: list[str]) -> list[str]:
    """`--value-range -1,1` -> `--value-range=-1,1`: argparse takes `-1,1` for an unknown flag
    (it only recognises plain negative numbers), so a list starting with a minus joins its flag."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and re.fullmatch(r"-[\d.][\d.,eE+-]*", token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def common_flags(args: argparse.Namespace) -> list[str]:
    """The pack command's other flags (--out, --seed, ...), as argv for another `pack` command."""
    argv = ["--out", str(args.out), f"--seed={args.seed}", f"--realness-samples={args.realness_samples}"]
    return argv + (["--force"] if args.force else [])


def service_pack(argv: list[str]) -> int:
    """`python -m service pack ARGV` in a subprocess (this repository on its path); its exit
    code. How `python -m training pack` hands ONNX files to the one packing path without
    importing the service (docs/DESIGN.md)."""
    repo = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "service", "pack", *argv], env=env).returncode
