"""The engine: one onnxruntime session per graph for every model folder under the models dir.

Each folder is verified before it serves: its card (models/card.py), the sha256 of each graph, the
graphs' inputs and outputs as onnxruntime sees them against the card, and a warm-up run whose
output shapes must match the card too. A folder that fails is kept as `unavailable` with the
reason, unless it is the default model: then the whole engine refuses to start.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from models.card import CARD_FILE, CardError, ModelCard, check_signature, load_model_folder
from service.runtime import backends
from service.runtime.model import InferenceError, LoadedModel, observed_signature, probe_latents
from service.runtime.providers import CPU, choose_providers
from service.runtime.w_avg import read_directions, read_w_avg

log = logging.getLogger("ganserve.engine")


class EngineError(RuntimeError):
    """The engine cannot start: names the folder and file at fault."""


class UnknownModel(LookupError):
    def __init__(self, name: str, available: list[str]):
        self.name = name
        super().__init__(f"unknown model {name!r}; models here: {', '.join(available) or 'none'}")


class ModelUnavailable(RuntimeError):
    def __init__(self, name: str, reason: str):
        self.name = name
        super().__init__(f"model {name!r} is unavailable: {reason}")


def _split_rows() -> int:
    from service.settings import SettingsError, get_settings

    try:
        return get_settings().split_rows
    except SettingsError:  # reported where the settings are read for real
        return 0


def model_folders(models_dir: Path) -> list[Path]:
    """Sub-folders that are meant to be models (not __pycache__, not hidden), sorted by name."""
    if not models_dir.is_dir():
        raise EngineError(f"{models_dir}: the models directory does not exist")
    return sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


class Engine:
    """Loads every model folder at construction (or only the one `from_folder` names);
    afterwards read-only and thread-safe. `run_threads`: graph runs that awaiting callers can
    have going at once (the async micro-batchers run one batch per graph at a time)."""

    def __init__(
        self,
        models_dir: Path | str,
        device: str = "auto",
        default_model: str = "mnist",
        intra_op_threads: int = 1,
        only: str | None = None,
        micro_batching: bool = True,
        run_threads: int = 8,
        backend: str = backends.DEFAULT,
        gather_s: float = 0.0,
        split_rows: int | None = None,
    ):
        self.models_dir = Path(models_dir)
        try:
            backends.check(backend, device)
        except backends.BackendError as e:
            raise EngineError(str(e)) from None
        self.backend = backend
        self.layout_note = ""  # how many workers and threads serve (set by the service)
        # Threads start on first use: engines that only serve threads (the dataset CLI) start none.
        self.executor = ThreadPoolExecutor(max_workers=run_threads, thread_name_prefix="ganserve-run")
        self.micro_batching = micro_batching
        self.gather_s = gather_s
        self.intra_op_threads = intra_op_threads
        # A G's runs of >= split_rows rows as one one-thread run per graph thread, at once
        # (backends.SplitRuns; None: GANSERVE_SPLIT_ROWS, 0: never).
        self.split_rows = _split_rows() if split_rows is None else split_rows
        self.splitter: backends.Splitter | None = None  # made with the first CPU session that splits
        self.device = device
        self.providers: list[str] | None = None
        self.provider_note = ""
        self.models: dict[str, LoadedModel] = {}
        self.unavailable: dict[str, str] = {}
        folders = model_folders(self.models_dir) if only is None else [self.models_dir / only]
        for folder in folders:
            try:
                self.models[folder.name] = self._load(folder)
            except CardError as e:
                if folder.name == default_model:
                    raise EngineError(f"default model {default_model!r} in {folder} cannot serve: {e}") from None
                log.warning("model %s is unavailable: %s", folder.name, e)
                self.unavailable[folder.name] = self._reason(e)
        if not self.models:
            raise EngineError(f"{self.models_dir}: no servable model folder ({len(self.unavailable)} unavailable)")
        # The configured default, else the only / first (by name) loaded model.
        self.default_model = default_model if default_model in self.models else next(iter(self.models))

    @classmethod
    def from_folder(
        cls, folder: Path | str, device: str = "auto", intra_op_threads: int = 1, backend: str = backends.DEFAULT
    ) -> Engine:
        """An engine over the one model folder given (its default model): what the dataset CLI
        needs for `--model-dir models/mnist`, without loading that folder's siblings. A folder
        that cannot serve is an EngineError naming it and the file at fault."""
        folder = Path(folder).resolve()  # `.` or `models/mnist/` still name the folder
        if not folder.is_dir():
            raise EngineError(f"{folder}: the model folder does not exist")
        return cls(
            folder.parent,
            device,
            default_model=folder.name,
            intra_op_threads=intra_op_threads,
            only=folder.name,
            backend=backend,
        )

    def _reason(self, e: CardError) -> str:
        """The failure with the file named relative to the models dir: /models shows it to
        callers, who need the folder and file, not the server's filesystem layout."""
        try:
            return f"{e.path.relative_to(self.models_dir)}: {e.problem}"
        except ValueError:
            return str(e)

    def _load(self, folder: Path) -> LoadedModel:
        if not (folder / CARD_FILE).is_file():
            raise CardError(folder / CARD_FILE, "missing: not a model folder")
        card, paths = load_model_folder(folder)
        if self.providers is None:  # the first verified graph probes the device for all models
            self.providers, self.provider_note = choose_providers(
                self.device, paths[card.sampling_roles[-1]], self.intra_op_threads
            )
            log.info("execution providers %s (%s)", self.providers, self.provider_note)
        choice = self._choose_backend(card, paths)
        splitter = self._splitter_for(choice.backend)
        sessions = {
            role: self._open(choice.backend, card, role, path, splitter if role in card.sampling_roles else None)
            for role, path in paths.items()
        }
        if splitter is not None:
            choice = backends.Choice(choice.backend, f"{choice.reason}; {splitter.describe()}", choice.samples_per_s)
        provider = sessions[card.sampling_roles[-1]].get_providers()[0]
        model = LoadedModel(
            card=card,
            folder=folder,
            provider=provider,
            sessions=sessions,
            executor=self.executor,
            micro_batching=self.micro_batching,
            gather_s=self.gather_s,
            backend=choice.backend,
            backend_reason=choice.reason,
            w_avg=read_w_avg(folder, card) if card.style is not None else None,
            directions=read_directions(folder, card) if card.directions is not None else {},
        )
        try:
            model.warm_up()
        except InferenceError as e:
            raise CardError(folder, f"warm-up run failed: {e}") from None
        log.info("loaded %s (%s) on %s", card.name, card.version, provider)
        return model

    def _open(self, backend: str, card: ModelCard, role: str, path: Path, splitter: backends.Splitter | None):
        """One graph opened by `backend`, its inputs and outputs checked against the card; with a
        splitter, opened a second time on one intra-op thread for the large runs it splits by rows."""
        sig = card.expected_signature(role)
        names = tuple(t.name for t in sig.inputs + sig.outputs)
        try:
            session = backends.get(backend).open(path, self.intra_op_threads, self.providers, names)
            one = None if splitter is None else backends.get(backend).open(path, 1, self.providers, names)
        except Exception as e:
            raise CardError(path, f"{backend} cannot load it: {e}") from None
        check_signature(path, card.expected_signature(role), observed_signature(session, path))
        return session if one is None else backends.SplitRuns(session, one, splitter)

    def _splitter_for(self, backend: str) -> backends.Splitter | None:
        """The engine's splitter (made once) where `backend`'s sampling graphs split their large
        runs by rows over the graph threads (backends.SplitRuns): where the backend can on these
        providers (onnxruntime on the CPU), with split_rows > 0 and more than one graph thread;
        else None. The other graphs (D, its ratio, E) run as before: each second session costs its
        weights again (15 MB for mnist's G), and their large runs are rarer."""
        if not (self.split_rows > 0 and self.intra_op_threads > 1 and backends.splits(backend, self.providers)):
            return None
        if self.splitter is None:
            self.splitter = backends.Splitter(self.intra_op_threads, self.split_rows)
        return self.splitter

    def _choose_backend(self, card: ModelCard, paths: dict[str, Path]) -> backends.Choice:
        """The backend setting where it can run on the engine's providers (onnxruntime alone on
        CUDA); auto times the runnable backends on this model's generator (backends.choose)."""
        candidates = backends.runnable(self.providers)  # the default first
        if self.backend != "auto" and self.backend in candidates:
            return backends.choose(self.backend, {self.backend: None}, lambda n: {})
        if self.providers != [CPU]:  # a GPU: whatever was asked, the backends that run on it
            return backends.Choice(candidates[0], f"{candidates[0]}: the only backend for CUDA", {})
        if card.style is not None:  # the probe times one graph; a style-based run is two
            return backends.Choice(candidates[0], f"{candidates[0]}: the default, for a style-based model", {})
        if len(candidates) == 1:
            return backends.choose("auto", {candidates[0]: None}, lambda n: {})
        sessions = {
            b: self._open(b, card, "generator", paths["generator"], self._splitter_for(b)) for b in candidates
        }  # timed as served
        rng = np.random.default_rng(0)
        c_name = card.condition.input if card.condition else None

        def feeds(n: int) -> dict[str, np.ndarray]:
            z = probe_latents(rng, card.latent, n).reshape(n, *card.latent.graph_shape)
            out = {card.onnx.generator.inputs[0].name: z}
            if c_name:
                out[c_name] = np.zeros(n, np.int64)
            return out

        choice = backends.choose("auto", sessions, feeds)
        log.info("%s: %s", card.name, choice.reason)
        return choice

    def get(self, name: str | None) -> LoadedModel:
        """The model a request names (None: the default); UnknownModel / ModelUnavailable else."""
        name = name or self.default_model
        model = self.models.get(name)  # one read: with model control (registry.py) the dict is replaced, never changed
        if model is not None:
            return model
        if name in self.unavailable:
            raise ModelUnavailable(name, self.unavailable[name])
        raise UnknownModel(name, sorted(self.models))
