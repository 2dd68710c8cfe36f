"""`python -m service pack`: make a servable model folder from ONNX graphs made anywhere.

    python -m service pack --generator G.onnx [--discriminator D.onnx] --name NAME \
        --value-range -1,1 [--latent-shape 100,1,1] [--classes 10] [--out models]
    python -m service pack --mapping M.onnx --synthesis S.onnx --w-avg w_avg.npy [--discriminator D.onnx] ...

Needs only the serving install (onnxruntime; no torch, no onnx package). What the graphs say
(input and output names, shapes, dtypes) is read from them; what they cannot say is declared, and
a declaration that contradicts them is refused naming the flag (exit 2, nothing written). Prints
the model folder on success. `python -m training pack` offers the same, and packs torch modules.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models import packing as flags

EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", type=Path, metavar="G.onnx", help="the generator graph (z [, c] -> x)")
    parser.add_argument(
        "--mapping", type=Path, metavar="M.onnx", help="a style-based generator's mapping (z [, c] -> w [batch, w_dim])"
    )
    parser.add_argument(
        "--synthesis",
        type=Path,
        metavar="S.onnx",
        help="... its synthesis (ws [batch, num_ws, w_dim] -> x, noise fixed)",
    )
    parser.add_argument("--w-avg", type=Path, metavar="w_avg.npy", help="... and its mean w, float32 [w_dim]")
    parser.add_argument(
        "--discriminator",
        type=Path,
        metavar="D.onnx",
        help="its discriminator (outputs one logit per sample), for /score and realness filters",
    )
    flags.add_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("models"), help="the models directory (default: models)")
    parser.add_argument("--force", action="store_true", help="replace a model folder of the same name")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latents for samples.png and realness")
    parser.add_argument(
        "--realness-samples",
        type=int,
        default=1000,
        metavar="N",
        help="G's samples over which D's max logit (for DRS) is measured",
    )
    # `python -m training pack` passes the record of the torch files it exported from.
    parser.add_argument("--source-record", type=Path, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from models.card import Source
    from models.packing import PackError
    from service.packing.declare import Declarations
    from service.packing.pack import Graphs, pack

    try:
        if args.realness_samples < 1:
            raise PackError("--realness-samples", "must be >= 1")
        decl = Declarations(**flags.values(args))
        source = None
        if args.source_record is not None:
            source = Source.model_validate(json.loads(args.source_record.read_text(encoding="utf-8")))
        folder = pack(
            Graphs(args.generator, args.discriminator, args.mapping, args.synthesis, args.w_avg),
            decl,
            args.out,
            force=args.force,
            seed=args.seed,
            realness_samples=args.realness_samples,
            source=source,
        )
    except PackError as e:
        print(f"pack: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(folder)
    return 0
