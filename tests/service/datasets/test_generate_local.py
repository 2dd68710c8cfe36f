"""`python -m service generate` from a local model folder: reproducible, resumable, safe, and
strict about its arguments. Runs the command in process (its `main`) on the really trained
tiny models; the kill test runs it as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.__main__ import main
from service.datasets.writer import TMP_MARK
from tests.service.datasets.support import dataset, files, local, manifest, run_generate

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def whole(tiny_models_dir, tmp_path_factory) -> Path:
    """5 shards (the last one short) with realness: the reference the other runs must equal."""
    out = tmp_path_factory.mktemp("whole") / "data"
    code = main(
        [
            "generate",
            "--quiet",
            *local(tiny_models_dir),
            "--out",
            str(out),
            "--samples",
            "230",
            "--shard-size",
            "50",
            "--block-size",
            "16",
            "--seed",
            "11",
            "--realness",
            "--workers",
            "1",
        ]
    )
    assert code == 0
    return out


def test_a_dataset_is_shards_plus_a_manifest_that_describes_them(whole, tiny_models_dir):
    x, shards = dataset(whole)
    assert x.dtype == np.float32 and x.shape == (230, 1, 8, 8)
    assert [s["count"] for s in shards] == [50, 50, 50, 50, 30]
    m = manifest(whole)
    card = json.loads((tiny_models_dir / "tiny-digits" / "model.json").read_text())
    assert m["model"]["name"] == "tiny-digits"
    assert m["model"]["generator_sha256"] == card["files"]["generator"]["sha256"]
    assert m["spec"]["base_seed"] == 11 and m["spec"]["format"] == "npy" and m["spec"]["filter"]["drs"] is False
    assert m["totals"] == {
        "shards": 5,
        "complete": 5,
        "samples": 230,
        "drawn": 230,
        "acceptance": 1.0,
        "class_counts": None,  # an unconditional model: no classes
        "engines": ["onnxruntime/CPUExecutionProvider"],
    }
    assert len({s["seed"] for s in shards}) == 5
    realness = np.load(whole / shards[0]["realness"]["file"], allow_pickle=False)
    assert realness.shape == (50,) and ((realness > 0) & (realness < 1)).all()
    assert not [p for p in whole.iterdir() if TMP_MARK in p.name]


def test_workers_and_shard_parts_do_not_change_the_dataset(whole, tiny_models_dir, tmp_path, capsys):
    common = [
        *local(tiny_models_dir),
        "--samples",
        230,
        "--shard-size",
        50,
        "--block-size",
        16,
        "--seed",
        11,
        "--realness",
    ]
    parallel = tmp_path / "parallel"
    assert run_generate(capsys, *common, "--out", parallel, "--workers", 4)[0] == 0
    assert files(parallel) == files(whole)
    pieces = tmp_path / "pieces"  # three "machines" writing parts of one dataset into one folder
    for i in (2, 0, 1):
        assert run_generate(capsys, *common, "--out", pieces, "--shard", f"{i}/3")[0] == 0
    assert files(pieces) == files(whole)
    assert dataset(pieces)[1] == dataset(whole)[1]


def test_one_shard_alone_equals_that_shard_of_the_whole(whole, tiny_models_dir, tmp_path, capsys):
    out = tmp_path / "some"
    code, _ = run_generate(
        capsys,
        *local(tiny_models_dir),
        "--out",
        out,
        "--samples",
        230,
        "--shard-size",
        50,
        "--block-size",
        16,
        "--seed",
        11,
        "--realness",
        "--shards",
        "3-4",
    )
    assert code == 0
    assert files(out) == {k: v for k, v in files(whole).items() if k.startswith(("shard-00003", "shard-00004"))}
    assert manifest(out)["totals"]["complete"] == 2


def test_rerun_skips_complete_shards_and_remakes_damaged_or_missing_ones(whole, tiny_models_dir, tmp_path, capsys):
    out = tmp_path / "data"
    shutil.copytree(whole, out)
    args = [
        *local(tiny_models_dir),
        "--out",
        out,
        "--samples",
        230,
        "--shard-size",
        50,
        "--block-size",
        16,
        "--seed",
        11,
        "--realness",
    ]
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, err = run_generate(capsys, *args)
    assert code == 0 and "made 0 shard(s), repaired 0, skipped 5 complete" in err
    assert all(p.stat().st_mtime_ns == before[p.name] for p in out.iterdir() if p.name.startswith("shard-"))
    with open(out / "shard-00002.npy", "r+b") as f:  # one flipped byte in the data
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 0xFF]))
    (out / "shard-00004.realness.npy").unlink()
    (out / ".shard-00001.npy.tmp-999-0").write_bytes(b"half a shard")  # a killed run's leftover
    (out / ".manifest.json.tmp-999-0").write_text('{"half a')  # killed while updating the manifest
    code, err = run_generate(capsys, *args)
    assert code == 0
    assert "shard 2: shard-00002.npy does not match its sha256" in err
    assert "shard 4: shard-00004.realness.npy is missing" in err
    assert files(out) == files(whole)
    assert not [p for p in out.iterdir() if TMP_MARK in p.name]


def test_uint8_png_and_filtered_datasets(tiny_models_dir, tmp_path, capsys, monkeypatch):
    base = [*local(tiny_models_dir), "--samples", 40, "--shard-size", 20, "--block-size", 8, "--seed", 3]
    assert run_generate(capsys, *base, "--out", tmp_path / "f32")[0] == 0
    assert run_generate(capsys, *base, "--out", tmp_path / "u8", "--dtype", "uint8")[0] == 0
    assert run_generate(capsys, *base, "--out", tmp_path / "png", "--format", "png")[0] == 0
    f32, _ = dataset(tmp_path / "f32")
    u8, _ = dataset(tmp_path / "u8")
    assert u8.dtype == np.uint8 and u8.shape == f32.shape
    np.testing.assert_array_equal(u8, np.clip(np.rint(f32 * 255), 0, 255).astype(np.uint8))
    png = tmp_path / "png" / "shard-00001"
    names = sorted(p.name for p in png.iterdir())
    assert names[0] == "000000.png" and len(names) == 20
    np.testing.assert_array_equal(np.asarray(Image.open(png / names[3])), u8[23, 0])

    assert manifest(tmp_path / "f32")["spec"]["max_draws_factor"] is None  # no filter: nothing redrawn
    monkeypatch.setenv("GANSERVE_MAX_DRAWS_FACTOR", "7")  # the bound a server here would use
    code, _ = run_generate(capsys, *base, "--out", tmp_path / "kept", "--min-realness", "0.5", "--realness")
    assert code == 0
    m = manifest(tmp_path / "kept")
    assert m["spec"]["filter"]["min_realness"] == 0.5 and m["spec"]["max_draws_factor"] == 7
    assert m["totals"]["drawn"] >= m["totals"]["samples"]
    for s in m["shards"]:
        realness = np.load(tmp_path / "kept" / s["realness"]["file"], allow_pickle=False)
        assert len(realness) == s["count"] and (realness >= 0.5).all()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shard-size", "0"], "--shard-size: Input should be greater than or equal to 1"),
        (["--samples", "10000000", "--shard-size", "1"], "more than 1000000: use larger shards"),
        (["--shards", "7-9"], "--shards: shard 9 does not exist: this dataset has shards 0-3"),
        (["--shard", "4/4"], "--shard: i must be in 0..N-1"),
        (["--workers", "0"], "--workers: out of range"),
        (["--format", "png", "--dtype", "float32"], "--dtype: png shards are 8-bit images"),
    ],
)
def test_bad_arguments_end_with_one_clear_line_and_write_nothing(tiny_models_dir, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code, err = run_generate(capsys, *local(tiny_models_dir), "--out", out, "--samples", 40, "--shard-size", 10, *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_bad_model_folder_output_or_existing_dataset(tiny_models_dir, tmp_path, capsys):
    common = ["--samples", 40, "--shard-size", 10]
    code, err = run_generate(capsys, "--model-dir", tmp_path / "nope", "--out", tmp_path / "a", *common)
    assert code == 2 and "nope: not a model folder (no model.json)" in err and not (tmp_path / "a").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, err = run_generate(capsys, *local(tiny_models_dir), "--out", blocker / "data", *common)
    assert code == 2 and "--out: cannot create" in err and "is not a folder" in err
    code, err = run_generate(
        capsys, *local(tiny_models_dir, "tiny-ring"), "--out", tmp_path / "r", *common, "--format", "png"
    )
    assert code == 2 and "tiny-ring makes vectors" in err and not (tmp_path / "r").exists()
    assert run_generate(capsys, *local(tiny_models_dir), "--out", tmp_path / "d", *common)[0] == 0
    before = files(tmp_path / "d")
    code, err = run_generate(capsys, *local(tiny_models_dir), "--out", tmp_path / "d", *common, "--seed", 5)
    assert code == 2 and "describes another dataset (base_seed: 0 there, 5 now)" in err
    assert files(tmp_path / "d") == before


def _subprocess(args: list, out: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANSERVE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "service", "generate", "--quiet", *map(str, args), "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _complete(out: Path) -> int:
    try:
        return manifest(out)["totals"]["complete"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def _all_threads_stopped(pid: int) -> bool:
    """Every thread of the process is in the stopped state (T), so nothing it does can change the
    folder until it is continued. SIGSTOP reaches the threads asynchronously: the caller waits."""
    try:
        states = [
            (task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in Path(f"/proc/{pid}/task").iterdir()
        ]
    except (FileNotFoundError, ProcessLookupError):
        return False  # exited meanwhile: the caller's poll() says so
    return bool(states) and all(state in ("T", "t") for state in states)


def _run_until_complete(proc: subprocess.Popen, out: Path, shards: int, timeout_s: float) -> int:
    """Let the run go in short slices (SIGCONT, 50 ms, SIGSTOP) until `shards` are complete, and
    leave it stopped. The count the caller acts on is then the count the signal interrupts: a
    loaded machine that starves this test process cannot let the run race on to the end (or past
    the count) between looking at the folder and signalling it. Returns the complete shards."""
    deadline = time.monotonic() + timeout_s
    while True:
        os.kill(proc.pid, signal.SIGSTOP)
        while not _all_threads_stopped(proc.pid):
            if proc.poll() is not None:
                pytest.fail(
                    f"the run ended ({proc.returncode}) before it could be interrupted: "
                    f"{proc.stderr.read().decode()[-2000:]}"
                )
            time.sleep(0.005)
        done = _complete(out)
        if done >= shards:
            return done
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"only {done} shard(s) complete after {timeout_s} s")
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_run_killed_part_way_resumes_to_the_uninterrupted_result(tiny_models_dir, tmp_path, capsys, sig):
    # Blocks of 2 make the run slow enough (thousands of graph runs) to be caught part-way.
    args = [*local(tiny_models_dir), "--samples", 6000, "--shard-size", 200, "--block-size", 2, "--seed", 9]
    killed = tmp_path / "killed"
    proc = _subprocess(args, killed)
    # Startup (imports, model load) runs in the slices too: a generous bound for a loaded machine.
    assert _run_until_complete(proc, killed, 3, timeout_s=240) < 30
    proc.send_signal(sig)  # SIGKILL ends a stopped process at once
    if sig != signal.SIGKILL:
        os.kill(proc.pid, signal.SIGCONT)  # a stopped process acts on SIGTERM once it runs again
    err = proc.communicate(timeout=30)[1].decode()
    done = _complete(killed)
    assert 3 <= done < 30
    if sig == signal.SIGTERM:  # a clean stop: says so, exits 130, leaves no temporary file
        assert proc.returncode == 130 and "rerun the same command to resume" in err
        assert not [p for p in killed.iterdir() if TMP_MARK in p.name]
    else:
        assert proc.returncode == -signal.SIGKILL
    # Nothing that looks complete is half-written: every shard file on disk is a whole array.
    for path in killed.glob("shard-*.npy"):
        assert np.load(path, allow_pickle=False).shape[1:] == (1, 8, 8)
    assert run_generate(capsys, *args, "--out", killed)[0] == 0
    clean = tmp_path / "clean"
    assert run_generate(capsys, *args, "--out", clean)[0] == 0
    assert files(killed) == files(clean)
    assert dataset(killed)[1] == dataset(clean)[1]
    assert not [p for p in killed.iterdir() if TMP_MARK in p.name]
