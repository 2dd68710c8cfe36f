"""`python -m service <command>`: each command lives in service/commands/<command>.py and exposes
`add_arguments(parser)` and `run(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import sys

from models.packing import join_negative_values

COMMANDS = {
    "serve": "serve the models under the models directory over HTTP (BentoML)",
    "generate": "write a sharded synthetic dataset from a server or a local model folder",
    "pack": "make a servable model folder from ONNX graphs made elsewhere (no torch needed)",
}


def main(argv: list[str] | None = None) -> int:
    # `--value-range -1,1`: argparse would read `-1,1` as a flag (models/packing.py).
    argv = join_negative_values(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Import only the command asked for: `serve` need not load what `generate` needs, or the reverse.
    chosen = next((a for a in argv if a in COMMANDS), None)
    module = None
    for name, help_text in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(f"service.commands.{name}")
            module.add_arguments(command_parser)
    args = parser.parse_args(argv)
    return module.run(args)


if __name__ == "__main__":
    sys.exit(main())
