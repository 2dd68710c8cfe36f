"""directions.json: written beside a model folder's graphs (atomically), then recorded on its card
with its checksum. JSON, so a person can read what each direction is and how it was made."""

from __future__ import annotations

import json
from pathlib import Path

from models.card import DIRECTIONS_FILE, ModelCard, file_entry, load_model_folder, read_card, verify_files, write_card
from training.directions.find import Direction


def to_json(card: ModelCard, directions: list[Direction]) -> dict:
    return {
        "space": "w" if card.style is not None else "z",
        "dim": int(len(directions[0].vector)) if directions else 0,
        "directions": [
            {
                "name": d.name,
                "kind": d.kind,
                "how": d.how,
                "std": d.std,
                **d.extra,
                "vector": [float(v) for v in d.vector],
            }
            for d in directions
        ],
    }


def write_directions(folder: Path | str, directions: list[Direction]) -> Path:
    folder = Path(folder)
    card, _ = load_model_folder(folder)
    path = folder / DIRECTIONS_FILE
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(to_json(card, directions), indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    write_card(folder, ModelCard.model_validate({**card.model_dump(), "directions": file_entry(path).model_dump()}))
    verify_files(folder, read_card(folder))
    return path
