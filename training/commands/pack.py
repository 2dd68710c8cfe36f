"""`python -m training pack`: make a servable model folder from a generator trained anywhere.

    # a torch module and its state dict (the training extra)
    python -m training pack --torch-generator mypkg.nets:make_g --weights G.safetensors \
        [--torch-discriminator mypkg.nets:make_d --discriminator-weights D.pt \
         --discriminator-output probability] --latent-shape 100,1,1 --value-range -1,1 --name NAME
    # ONNX graphs: the same as `python -m service pack` (which needs no torch)
    python -m training pack --generator G.onnx [--discriminator D.onnx] --value-range -1,1 --name NAME

A torch module is exported by our exporter (single-file ONNX, IR version 10, a dynamic batch axis)
and checked for parity with torch; then, in both cases, `python -m service pack` reads the graphs,
checks the declarations against them, verifies the folder with the service's engine, and prints it.
Exit status 2 with one line naming the flag on a refusal; nothing is left half-written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models import packing as flags

EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_mutually_exclusive_group(required=True)
    g.add_argument("--generator", type=Path, metavar="G.onnx", help="an ONNX generator made elsewhere")
    g.add_argument(
        "--torch-generator",
        metavar="PKG.MODULE:FACTORY",
        help="a callable returning the generator nn.Module (importable from the current directory)",
    )
    parser.add_argument("--weights", type=Path, metavar="G.safetensors|G.pt", help="the generator's state dict")
    d = parser.add_mutually_exclusive_group()
    d.add_argument("--discriminator", type=Path, metavar="D.onnx", help="an ONNX discriminator (logit output)")
    d.add_argument("--torch-discriminator", metavar="PKG.MODULE:FACTORY", help="the discriminator nn.Module")
    parser.add_argument("--discriminator-weights", type=Path, metavar="D.safetensors|D.pt")
    parser.add_argument(
        "--discriminator-output",
        choices=("logit", "probability"),
        default="logit",
        help="what the torch D returns: logits, or sigmoid probabilities (converted to logits)",
    )
    flags.add_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("models"), help="the models directory (default: models)")
    parser.add_argument("--force", action="store_true", help="replace a model folder of the same name")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--realness-samples", type=int, default=1000, metavar="N")


def run(args: argparse.Namespace) -> int:
    from models.packing import PackError, common_flags, service_pack

    try:
        if args.generator is not None:  # ONNX graphs: exactly the service's command
            for flag in ("weights", "torch_discriminator", "discriminator_weights"):
                if getattr(args, flag) is not None:
                    raise PackError(f"--{flag.replace('_', '-')}", "goes with --torch-generator, not --generator")
            if args.discriminator_output != "logit":
                raise PackError(
                    "--discriminator-output",
                    "probability is converted for torch modules only; "
                    "re-export the ONNX discriminator without its final sigmoid",
                )
            argv = ["--generator", str(args.generator), *flags.forward(args)]
            if args.discriminator is not None:
                argv += ["--discriminator", str(args.discriminator)]
            return service_pack(argv + common_flags(args))
        if args.weights is None:
            raise PackError("--weights", "required with --torch-generator")
        if args.discriminator is not None:
            raise PackError("--discriminator", "with --torch-generator, give D as --torch-discriminator")
        declarations = flags.values(args)
        sys.path.insert(0, str(Path.cwd()))  # `--torch-generator mypkg.nets:make_g` from where the user stands
        from training.pack import pack_torch  # torch: only on this path

        return pack_torch(args, flags.forward(args), declarations)
    except PackError as e:
        print(f"pack: error: {e}", file=sys.stderr)
        return EXIT_USAGE
