"""`python -m service generate --out s3://...`: the same atomic-write, verify and resume guarantees
on object storage, against a real S3 API (moto's server mode on loopback, started here; s3fs as
the client, as users run it), compared byte for byte with the same dataset in a local folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from service.__main__ import main

REPO = Path(__file__).resolve().parents[3]
MOTO = Path(sys.executable).with_name("moto_server")
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
}  # moto takes any; us-east-1 buckets fail via s3fs
SPEC = ["--samples", 230, "--shard-size", 50, "--block-size", 16, "--seed", 11, "--realness"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 and an s3fs client of it, with a fresh bucket."""
    import s3fs

    port = _free_port()
    proc = subprocess.Popen(
        [str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("moto_server did not start")
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, client_kwargs={"region_name": "eu-west-1"})
        fs.mkdir("datasets")
        yield fs, endpoint
    finally:
        proc.kill()
        proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_generate(capsys, *args) -> tuple[int, str]:
    code = main(["generate", "--quiet", *map(str, args)])
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def local(models: Path) -> list:
    return ["--model-dir", models / "tiny-digits", "--threads", 1]


def shard_objects(fs, prefix: str) -> dict[str, bytes]:
    fs.invalidate_cache()
    return {
        p.rsplit("/", 1)[1]: fs.cat_file(p)
        for p in sorted(fs.ls(prefix, detail=False))
        if p.rsplit("/", 1)[1].startswith("shard-")
    }


def shard_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name.startswith("shard-")}


def s3_manifest(fs, prefix: str) -> dict:
    fs.invalidate_cache()
    return json.loads(fs.cat_file(f"{prefix}/manifest.json"))


@pytest.fixture(scope="module")
def reference(tiny_models_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "data"
    assert main(["generate", "--quiet", *map(str, local(tiny_models_dir)), "--out", str(out), *map(str, SPEC)]) == 0
    return out


def test_a_dataset_in_s3_equals_the_local_one_and_a_rerun_repairs_damage(s3, reference, tiny_models_dir, capsys):
    fs, endpoint = s3
    url, args = "s3://datasets/digits", [*local(tiny_models_dir), *SPEC, "--storage-option", f"endpoint_url={endpoint}"]
    code, err = run_generate(capsys, *args, "--out", url)
    assert code == 0, err
    assert shard_objects(fs, "datasets/digits") == shard_files(reference)
    m = s3_manifest(fs, "datasets/digits")
    local_m = json.loads((reference / "manifest.json").read_text())
    assert m["shards"] == local_m["shards"] and m["totals"]["complete"] == 5
    assert not [p for p in fs.ls("datasets/digits", detail=False) if ".tmp-" in p]

    code, err = run_generate(capsys, *args, "--out", url)  # verified from S3: nothing rewritten
    assert code == 0 and "made 0 shard(s), repaired 0, skipped 5 complete" in err

    data = bytearray(fs.cat_file("datasets/digits/shard-00002.npy"))
    data[200] ^= 0xFF  # one flipped byte in an object
    fs.pipe_file("datasets/digits/shard-00002.npy", bytes(data))
    fs.rm("datasets/digits/shard-00004.realness.npy")
    code, err = run_generate(capsys, *args, "--out", url)
    assert code == 0
    assert "shard 2: shard-00002.npy does not match its sha256" in err
    assert "shard 4: shard-00004.realness.npy is missing" in err
    assert "repaired 2, skipped 3" in err
    assert shard_objects(fs, "datasets/digits") == shard_files(reference)


def test_png_shards_on_s3_and_refusals(s3, tiny_models_dir, tmp_path, capsys):
    fs, endpoint = s3
    opts = ["--storage-option", f"endpoint_url={endpoint}"]
    base = [*local(tiny_models_dir), "--samples", 20, "--shard-size", 10, "--block-size", 8, "--format", "png"]
    assert run_generate(capsys, *base, *opts, "--out", "s3://datasets/pngs")[0] == 0
    assert run_generate(capsys, *base, "--out", tmp_path / "pngs")[0] == 0
    fs.invalidate_cache()
    names = sorted(p.rsplit("/", 1)[1] for p in fs.ls("datasets/pngs/shard-00001", detail=False))
    assert names == sorted(p.name for p in (tmp_path / "pngs" / "shard-00001").iterdir())
    assert (
        fs.cat_file("datasets/pngs/shard-00001/000003.png") == (tmp_path / "pngs/shard-00001/000003.png").read_bytes()
    )
    # A stray object inside a PNG shard changes its listing: detected and the prefix rebuilt.
    fs.pipe_file("datasets/pngs/shard-00000/stray.png", b"not ours")
    code, err = run_generate(capsys, *base, *opts, "--out", "s3://datasets/pngs")
    assert code == 0 and "shard 0: shard-00000 is" in err and "repaired 1" in err
    fs.invalidate_cache()
    assert not fs.exists("datasets/pngs/shard-00000/stray.png")
    # Another dataset into the same prefix is refused, naming the difference; a missing bucket too.
    code, err = run_generate(capsys, *base, *opts, "--out", "s3://datasets/pngs", "--seed", 5)
    assert code == 2 and "describes another dataset" in err and "base_seed" in err
    code, err = run_generate(capsys, *base, *opts, "--out", "s3://no-such-bucket/x")
    assert code == 2 and "no-such-bucket does not exist" in err


def _complete(fs, prefix: str) -> int:
    try:
        return s3_manifest(fs, prefix)["totals"]["complete"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_run_killed_part_way_resumes_on_s3(s3, tiny_models_dir, tmp_path, capsys):
    fs, endpoint = s3
    # Blocks of 2 make the run long enough (thousands of graph runs) to be caught part-way.
    args = [
        *local(tiny_models_dir),
        "--samples",
        6000,
        "--shard-size",
        200,
        "--block-size",
        2,
        "--seed",
        9,
        "--storage-option",
        f"endpoint_url={endpoint}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANSERVE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "generate", "--quiet", *map(str, args), "--out", "s3://datasets/killed"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while True:  # stopped while we look, so it cannot race to the end between looking and killing
        os.kill(proc.pid, signal.SIGSTOP)
        done = _complete(fs, "datasets/killed")
        if done >= 3:
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run ended or stalled with {done} shard(s): {proc.stderr.read().decode()[-2000:]}")
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.1)
    proc.kill()
    proc.communicate(timeout=30)
    assert 3 <= _complete(fs, "datasets/killed") < 30
    # Objects that exist are whole (a PUT is atomic): every shard object on S3 is a full array.
    for name, data in shard_objects(fs, "datasets/killed").items():
        assert name.endswith(".npy")
        path = tmp_path / name
        path.write_bytes(data)
        assert np.load(path, allow_pickle=False).shape == (200, 1, 8, 8)
    code, err = run_generate(capsys, *args, "--out", "s3://datasets/killed")
    assert code == 0, err
    clean = tmp_path / "clean"
    assert run_generate(capsys, *args[:-2], "--out", clean)[0] == 0
    assert shard_objects(fs, "datasets/killed") == shard_files(clean)
    assert s3_manifest(fs, "datasets/killed")["shards"] == json.loads((clean / "manifest.json").read_text())["shards"]
