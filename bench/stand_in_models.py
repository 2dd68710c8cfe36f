"""Untrained stand-ins for the four default models (`mnist`, `toy1d`, `ring8`, `grid25`), exported
with the real exporter into a scratch models directory, for benchmarks on a machine where the
trained `models/` are not there yet. Untrained weights cost exactly what trained ones do: the
graphs have the same shapes and operators.

    .venv/bin/python bench/stand_in_models.py /tmp/ganserve-bench/models

Folders that already exist are kept (a rerun costs nothing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

DEFAULT_MODELS = {"mnist": "mnist-paper", "toy1d": "toy1d", "ring8": "ring8", "grid25": "grid25"}


def ensure_stand_ins(models_dir: Path, names: dict[str, str] = DEFAULT_MODELS, progress: bool = True) -> Path:
    """Export every missing model of `names` (folder name -> preset) into models_dir."""
    missing = {name: preset for name, preset in names.items() if not (models_dir / name / "model.json").is_file()}
    if not missing:
        return models_dir
    import torch  # only when something is exported: the harness itself needs no torch

    from training.export import export_model
    from training.networks import build_discriminator, build_generator
    from training.presets import resolve

    torch.set_num_threads(1)  # small graphs: threads would fight on two busy cores
    for name, preset in missing.items():
        config = resolve(preset)
        torch.manual_seed(0)
        G, D = build_generator(config.network), build_discriminator(config.network)
        info = {
            "preset": preset,
            "config": config.to_dict(),
            "steps": 0,
            "wall_time_s": 0.0,
            "seed": 0,
            "dataset": str(config.dataset),
        }
        export_model(
            config.network,
            G,
            D,
            name=name,
            out_dir=models_dir,
            training_info=info,
            description=f"UNTRAINED stand-in with the architecture of preset {preset} (benchmarks only)",
            progress=progress,
        )
    return models_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models_dir", type=Path)
    args = parser.parse_args()
    ensure_stand_ins(args.models_dir)
    for folder in sorted(args.models_dir.iterdir()):
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
