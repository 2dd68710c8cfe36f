"""Models that change while serving: Triton's model control modes around the engine.

GANSERVE_MODEL_CONTROL chooses one:
- `none` (default): the models loaded at start-up serve until the server stops.
- `poll`: every GANSERVE_POLL_INTERVAL_S the models dir is rescanned. A new folder is verified
  and served; a changed one (any of its files' size or modification time) is verified and swapped
  in as its new version; a removed one stops serving. A folder that fails verification never
  replaces a working version: the working one keeps serving and GET /models shows the refusal.
- `explicit`: folders change nothing by themselves; POST /v2/repository/models/{name}/load
  verifies and (re)loads a folder, .../unload stops serving it.

Every worker process serves the same set. In `poll` mode each worker scans the same directory
itself. In `explicit` mode the worker that answers a load or unload applies it, then appends it
to a small control file (GANSERVE_CONTROL_FILE) that every worker's poller reads at the poll
interval and applies in order. So all workers agree within one interval of each other.

Swaps never fail a request: the engine's dicts are replaced whole (copy on write, so a reader
iterating one never sees it change), and a request holds its LoadedModel from lookup to answer,
so a retired version's in-flight requests finish on it; its sessions go when the last one does.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional, TextIO

from models.card import CARD_FILE, CardError
from service.runtime.engine import Engine, model_folders

log = logging.getLogger("ganserve.registry")
MODES = ("none", "poll", "explicit")


class ControlError(ValueError):
    """A load or unload the registry refuses: `status` 400 (not allowed, or failed), 404 (no such folder)."""

    def __init__(self, message: str, status: int = 400):
        self.status = status
        super().__init__(message)


def fingerprint(folder: Path) -> tuple:
    """What changes when a folder's files change: each file's name, size, mtime (ns) and inode
    (a file replaced by rename is a new inode, even within one mtime tick)."""
    try:
        return tuple(
            sorted(
                (p.name, st.st_size, st.st_mtime_ns, st.st_ino)
                for p in folder.iterdir()
                if p.is_file() and (st := p.stat())
            )
        )
    except OSError:  # the folder went away while being read: the next scan sees what is left
        return ()


def default_control_file(models_dir: Path) -> Path:
    """One file per server run and models dir, in this machine's temp dir: the workers of one
    server (children of the same `bentoml serve` process) share it, and a new run starts afresh."""
    key = hashlib.sha256(f"{Path(models_dir).resolve()}|{os.getppid()}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"ganserve-control-{key}.jsonl"


class Registry:
    def __init__(
        self,
        engine: Engine,
        mode: str = "none",
        interval_s: float = 5.0,
        control_file: Optional[Path] = None,
        configured_default: Optional[str] = None,
    ):
        if mode not in MODES:
            raise ValueError(f"model control must be one of {MODES}, got {mode!r}")
        self.engine, self.mode, self.interval_s = engine, mode, interval_s
        self.configured_default = configured_default or engine.default_model
        self.control_file = Path(control_file) if control_file else default_control_file(engine.models_dir)
        self._lock = threading.Lock()  # one change at a time (poller thread and load/unload requests)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._seen = {f.name: fingerprint(f) for f in model_folders(engine.models_dir)}
        engine.retired = {}  # name -> versions served once and no longer (versions.py: 409)
        engine.refused = {}  # name -> why its changed folder was not swapped in (a working version serves)
        self._applied = self._control_lines() if mode == "explicit" else 0  # control file lines applied

    # --- the loop ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.mode == "none" or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="ganserve-model-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.scan() if self.mode == "poll" else self.follow()
            except Exception:  # a poller that dies would freeze the models silently
                log.exception("model control: a %s round failed; retrying in %s s", self.mode, self.interval_s)

    # --- poll ----------------------------------------------------------------------------

    def scan(self) -> None:
        """One poll round: load new and changed folders, retire removed ones."""
        folders = {f.name: f for f in model_folders(self.engine.models_dir)}
        for name, folder in folders.items():
            now = fingerprint(folder)
            if self._seen.get(name) != now:
                self._seen[name] = now
                with self._lock:
                    self._load(name, folder)
        for name in [n for n in self._seen if n not in folders]:
            del self._seen[name]
            with self._lock:
                self._unload(name)

    # --- explicit --------------------------------------------------------------------------

    def request(self, action: str, name: str) -> dict:
        """POST /v2/repository/models/{name}/load|unload: applied here, then told to the other workers."""
        if self.mode != "explicit":
            raise ControlError(f"model control is {self.mode!r}: load and unload need GANSERVE_MODEL_CONTROL=explicit")
        folder = self.engine.models_dir / name
        if action == "load" and not (folder / CARD_FILE).is_file():
            raise ControlError(f"no model folder {name!r} in the models directory", 404)
        if action == "unload" and name not in self.engine.models:
            raise ControlError(f"model {name!r} is not loaded", 404)
        with self._lock, self._control(fcntl.LOCK_EX) as f:  # no other worker appends meanwhile
            self._catch_up(f)  # earlier requests, which other workers took, come first
            error = self._load(name, folder) if action == "load" else self._unload(name)
            if error is not None:
                raise ControlError(f"model {name!r} failed to load: {error}")
            f.write(json.dumps({"action": action, "name": name, "at": time.time(), "pid": os.getpid()}) + "\n")
            f.flush()
            self._applied += 1
        model = self.engine.models.get(name)
        return {
            "name": name,
            "state": "READY" if model else "UNAVAILABLE",
            **({"version": model.card.version} if model else {}),
        }

    def follow(self) -> None:
        """One explicit-mode round: apply what other workers appended to the control file."""
        with self._lock, self._control(fcntl.LOCK_SH) as f:
            self._catch_up(f)

    @contextlib.contextmanager
    def _control(self, lock: int) -> Iterator[TextIO]:
        """The control file, open for appending and reading, under an advisory lock: a writer
        holds it exclusively from catching up to appending, so no line is ever missed or half read."""
        self.control_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.control_file, "a+", encoding="utf-8") as f:
            fcntl.flock(f, lock)
            try:
                yield f
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _catch_up(self, f: TextIO) -> None:
        f.seek(0)
        lines = [json.loads(line) for line in f.read().splitlines() if line.strip()]
        for entry in lines[self._applied :]:
            folder = self.engine.models_dir / entry["name"]
            self._load(entry["name"], folder) if entry["action"] == "load" else self._unload(entry["name"])
        self._applied = len(lines)

    def _control_lines(self) -> int:
        """At start-up: requests made before this worker started count as applied, since it has
        just loaded every folder as it is now; it replays the unloads, so it serves what the others serve."""
        with self._control(fcntl.LOCK_SH) as f:
            f.seek(0)
            lines = [json.loads(line) for line in f.read().splitlines() if line.strip()]
        unloaded = {}
        for entry in lines:
            unloaded[entry["name"]] = entry["action"] == "unload"
        for name, gone in unloaded.items():
            if gone and name in self.engine.models:
                self._unload(name)
        return len(lines)

    # --- changes to the engine --------------------------------------------------------------

    def _load(self, name: str, folder: Path) -> Optional[str]:
        """Verify and load the folder; swap it in. None on success, else why it failed (and
        then a working version, if any, keeps serving)."""
        engine = self.engine
        old = engine.models.get(name)
        try:
            model = engine._load(folder)
        except CardError as e:
            reason = engine._reason(e)
            if old is not None:
                log.warning(
                    "model %s: the changed folder failed verification; %s keeps serving: %s",
                    name,
                    old.card.version,
                    reason,
                )
                engine.refused = {**engine.refused, name: reason}
            else:
                log.warning("model %s is unavailable: %s", name, reason)
                engine.unavailable = {**engine.unavailable, name: reason}
            return reason
        if old is not None and old.card.version == model.card.version:
            engine.refused = _without(engine.refused, name)
            return None  # touched, not changed: the working sessions stay
        engine.models = {**engine.models, name: model}
        engine.unavailable = _without(engine.unavailable, name)
        engine.refused = _without(engine.refused, name)
        if old is not None:
            self._retire(name, old.card.version)
        engine.retired = {**engine.retired, name: [v for v in engine.retired.get(name, []) if v != model.card.version]}
        self._pick_default()
        log.info(
            "model %s: serving version %s%s",
            name,
            model.card.version,
            f" (was {old.card.version})" if old is not None else " (new)",
        )
        return None

    def _unload(self, name: str) -> Optional[str]:
        engine = self.engine
        old = engine.models.get(name)
        engine.unavailable = _without(engine.unavailable, name)
        engine.refused = _without(engine.refused, name)
        if old is None:
            return None
        engine.models = _without(engine.models, name)
        self._retire(name, old.card.version)
        self._pick_default()
        log.info("model %s: version %s retired (its folder was removed or unloaded)", name, old.card.version)
        return None

    def _retire(self, name: str, version: str) -> None:
        versions = [v for v in self.engine.retired.get(name, []) if v != version]
        self.engine.retired = {**self.engine.retired, name: [*versions, version][-100:]}

    def _pick_default(self) -> None:
        """The configured default while it serves, else the first served model by name."""
        models = self.engine.models
        if self.configured_default in models:
            self.engine.default_model = self.configured_default
        elif models and self.engine.default_model not in models:
            self.engine.default_model = sorted(models)[0]


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}
