"""What `python -m training encoder` and `python -m training directions` add to a model folder,
made quickly for the tests' small models (real training, few steps)."""

from __future__ import annotations

from pathlib import Path


def add_tiny_encoder(folder: Path) -> None:
    """A real encoder.onnx, trained briefly on the folder's own (G(z), z) pairs (python -m training encoder)."""
    from tests.conftest import single_threaded_torch
    from training.encoder.export import add_encoder
    from training.encoder.pairs import FolderGraphs
    from training.encoder.train import train_encoder

    with single_threaded_torch():
        E, stats, held = train_encoder(FolderGraphs(folder, threads=1), steps=300, pool=2000, progress=False)
    add_encoder(folder, E, stats, held)


def add_directions(folder: Path) -> None:
    """directions.json as python -m training directions writes it (principal directions here)."""
    from training.directions.find import find
    from training.directions.store import write_directions
    from training.encoder.pairs import FolderGraphs

    write_directions(folder, find(FolderGraphs(folder, threads=1), samples=600, k=4))
