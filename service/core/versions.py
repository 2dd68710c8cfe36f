"""A request's pinned model version: the version served now, or a refusal that says which.

A model's version is its card's (the generator's sha256, first 12 hex digits). With model control
(registry.py) versions come and go; the engine's `retired` record (name -> versions no longer
served) tells a version that was served and is gone (409, so a client can tell it must move on)
from one never served here (404).
"""

from __future__ import annotations

from typing import Optional

from service.runtime.engine import Engine
from service.runtime.model import LoadedModel


class VersionGone(LookupError):
    """409: the pinned version was served here once and is no longer."""

    def __init__(self, name: str, version: str, current: str):
        self.name, self.version = name, version
        super().__init__(f"model {name!r} no longer serves version {version!r} (now serving {current!r})")


class UnknownVersion(LookupError):
    """404: the model never served that version here."""

    def __init__(self, name: str, version: str, current: str):
        self.name, self.version = name, version
        super().__init__(f"model {name!r} has no version {version!r} (serving {current!r})")


def pinned(engine: Engine, name: Optional[str], version: Optional[str]) -> LoadedModel:
    """The model a request names, checked against the version it pins (None: any)."""
    model = engine.get(name)
    if version is None or version == model.card.version:
        return model
    if version in getattr(engine, "retired", {}).get(model.name, ()):
        raise VersionGone(model.name, version, model.card.version)
    raise UnknownVersion(model.name, version, model.card.version)
