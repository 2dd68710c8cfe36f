"""`python -m training <command>`: each command lives in training/commands/<command>.py and
exposes `add_arguments(parser)` and `run(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import sys

from models.packing import join_negative_values

COMMANDS = {
    "train": "train a GAN from a named preset",
    "export": "export a run's G and D to ONNX in models/<name>/",
    "evaluate": "measure a run or an exported model and record the metrics on its card",
    "calibrate": "train an exported model's D on with G frozen, for serving (realness, DRS)",
    "pack": "make a servable model folder from a generator trained elsewhere (torch module or ONNX)",
    "encoder": "train an encoder E (x -> z) for a model folder, G frozen, and add encoder.onnx to it",
    "project": "optimise the latents of images through G in torch, from E's guess (the slow, exact inversion)",
    "directions": "find editing directions in a model folder's latent space and add directions.json to it",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, help_text in COMMANDS.items():
        modules[name] = importlib.import_module(f"training.commands.{name}")
        modules[name].add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    # `--value-range -1,1`: argparse would read `-1,1` as a flag (models/packing.py).
    args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else argv))
    return modules[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
