"""Large runs split by rows into one-thread runs at once (service/runtime/backends.py SplitRuns,
GANSERVE_SPLIT_ROWS): the same answers, bit for bit, as one unsplit run, for every shipped model's
graphs and the factory's conditional and DCGAN-shaped ones; small runs go to the session on the graph
threads as before, and large runs that find no helper free run whole on the caller's thread."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from service.runtime import backends
from service.runtime.engine import Engine
from tests.service.model_factory import make_model

REPO = Path(__file__).resolve().parents[3]
SHIPPED = sorted(p.name for p in (REPO / "models").iterdir() if (p / "model.json").is_file())


def _pair(models_dir: Path, name: str, split_rows: int = 8) -> tuple:
    """The model served split (2 graph threads, runs of >= split_rows rows split) and unsplit."""
    split = Engine(models_dir, device="cpu", default_model=name, only=name, intra_op_threads=2, split_rows=split_rows)
    whole = Engine(models_dir, device="cpu", default_model=name, only=name, intra_op_threads=2, split_rows=0)
    return split, whole


def _differences(split: Engine, whole: Engine, name: str, n: int) -> list[str]:
    """What differs between the split and the unsplit engine on n rows: which graphs split (the
    sampling graphs do; D, its ratio and E do not), and any answer not equal bit for bit."""
    a, b = split.get(name), whole.get(name)
    found = [
        f"{role}: split {isinstance(session, backends.SplitRuns)}"
        for role, session in a.sessions.items()
        if isinstance(session, backends.SplitRuns) != (role in a.card.sampling_roles)
    ]
    found += [f"unsplit {role} split" for role, s in b.sessions.items() if isinstance(s, backends.SplitRuns)]
    rng = np.random.default_rng(n)
    z = rng.uniform(-1.7, 1.7, (n, a.card.latent.dim)).astype(np.float32)
    c = np.arange(n) % a.card.condition.classes if a.conditional else None
    if a.is_style:
        x = a.synthesize(a.broadcast(a.map_w(z, c)))
        pairs = {"samples": (x, b.synthesize(b.broadcast(b.map_w(z, c))))}
    else:
        x = a.generate_inline(z, c)
        pairs = {"samples": (x, b.generate_inline(z, c))}
    if a.has_discriminator:
        pairs["logits"] = (a.logits_inline(x, c), b.logits_inline(x, c))
    if a.has_encoder:
        pairs["latents of E"] = (a.encode(x, c), b.encode(x, c))
    return found + [f"{what} at n = {n}" for what, (p, q) in pairs.items() if not np.array_equal(p, q)]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_split_answer_as_unsplit(name):
    split, whole = _pair(REPO / "models", name)
    assert "split over 2 one-thread runs" in split.get(name).backend_reason
    for n in (8, 37, 1024):  # even, odd (unequal slices), and the size the split is for
        assert not _differences(split, whole, name, n)


@pytest.fixture(scope="module")
def factory_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("split")
    make_model(root, "cond", classes=4, shape=(1, 4, 4), z_dim=6)
    make_model(root, "dcgan", latent_shape=[5, 1, 1], shape=(3, 4, 4), z_dim=5, distribution="normal")
    return root


@pytest.mark.parametrize("name", ["cond", "dcgan"])
def test_factory_models_split_answer_as_unsplit(factory_dir, name):
    split, whole = _pair(factory_dir, name)
    for n in (9, 300):
        assert not _differences(split, whole, name, n)


def test_no_split_on_one_graph_thread_or_when_off(factory_dir):
    one = Engine(factory_dir, device="cpu", default_model="cond", only="cond", intra_op_threads=1, split_rows=8)
    off = Engine(factory_dir, device="cpu", default_model="cond", only="cond", intra_op_threads=2, split_rows=0)
    for engine in (one, off):
        assert engine.splitter is None
        assert not any(isinstance(s, backends.SplitRuns) for s in engine.get("cond").sessions.values())


class _Recorder:
    """A session that records the rows of each run and the thread it ran on, answering its input."""

    def __init__(self, gate: threading.Event | None = None, name: str = "one"):
        self.calls: list[tuple[int, str]] = []
        self.gate = gate
        self.name = name
        self.lock = threading.Lock()

    def run(self, output_names, feeds):
        if self.gate is not None and threading.current_thread().name.startswith("ganserve-split"):
            self.gate.wait(5)
        z = feeds["z"]
        with self.lock:
            self.calls.append((len(z), threading.current_thread().name))
        return [z * 2, z[:, :1]]

    def get_providers(self):
        return [f"{self.name}:CPUExecutionProvider"]


def test_split_runs_slices_rows_and_concatenates_in_order():
    whole, one = _Recorder(name="whole"), _Recorder()
    runs = backends.SplitRuns(whole, one, backends.Splitter(parts=3, min_rows=4))
    z = np.arange(20, dtype=np.float32).reshape(10, 2)
    out = runs.run(None, {"z": z})
    assert np.array_equal(out[0], z * 2) and np.array_equal(out[1], z[:, :1])
    assert sorted(rows for rows, _ in one.calls) == [3, 3, 4]  # 10 rows over 3 slices
    assert sum(name.startswith("ganserve-split") for _, name in one.calls) == 2
    assert not whole.calls
    assert runs.get_providers() == ["whole:CPUExecutionProvider"]  # everything else is the whole session's

    one.calls.clear()
    runs.run(None, {"z": z[:3]})  # under min_rows: on the graph threads' session, as unsplit
    assert whole.calls == [(3, threading.current_thread().name)] and not one.calls
    runs.run(None, {"z": z, "c": np.zeros(3)})  # inputs of different lengths: not split
    assert whole.calls[-1][0] == 10 and not one.calls


def test_a_run_that_finds_no_helper_free_runs_whole():
    gate = threading.Event()
    session = _Recorder(gate)
    splitter = backends.Splitter(parts=2, min_rows=4)
    runs = backends.SplitRuns(_Recorder(name="whole"), session, splitter)
    z = np.ones((8, 2), np.float32)
    first = threading.Thread(target=runs.run, args=(None, {"z": z}))
    first.start()  # its second half holds the one helper until the gate opens
    for _ in range(500):
        if any(rows == 4 and not name.startswith("ganserve-split") for rows, name in session.calls):
            break
        threading.Event().wait(0.01)
    runs.run(None, {"z": z})  # no helper free: 8 rows whole, here, without waiting for the gate
    assert (8, threading.current_thread().name) in session.calls
    gate.set()
    first.join(5)
    assert splitter.helpers() == 1  # given back
