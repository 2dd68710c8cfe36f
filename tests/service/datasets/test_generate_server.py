"""`python -m service generate` over HTTP, and the server's `generate_dataset` task, against a real
`python -m service serve` (bentoml serve) subprocess: the same bytes as the local path whether the
blocks go by cacheable GET or by POST, replicas and retries, clear failures (a model swapped
mid-run among them). Tasks need the real server: under to_asgi() BentoML creates no task table
(../shared/STACK.md)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import httpx
import pytest

from service.datasets.writer import TMP_MARK
from tests.servers import dead_url, start_server
from tests.service.datasets.support import dataset, files, local, manifest, run_generate, run_task
from tests.service.model_factory import install, make_model
from tests.service.support import TOKEN, real_server_env

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Several shards, a short last one, blocks of 16 (the test server's max n is 256), filter and realness.
SPEC = ["--samples", 100, "--shard-size", 40, "--block-size", 16, "--seed", 21]
SERVER_DRAWS_FACTOR = 30  # the test server's GANSERVE_MAX_DRAWS_FACTOR


@pytest.fixture(scope="module")
def server(service_models_dir, tmp_path_factory):
    """(base URL, the folder its dataset task writes into)."""
    root = tmp_path_factory.mktemp("generate-server")
    # GANSERVE_MAX_DRAWS_FACTOR not the default (20, what the local reference uses): the manifests
    # must record the server's. No block of the filtered SPEC runs out of draws under either, so
    # their bytes still agree.
    env = real_server_env(
        service_models_dir,
        root,
        GANSERVE_OUTPUT_DIR=str(root / "datasets"),
        GANSERVE_MAX_DRAWS_FACTOR=str(SERVER_DRAWS_FACTOR),
    )
    with start_server(service_models_dir, env, root) as running:
        yield running.url, root / "datasets"


@pytest.fixture(scope="module")
def reference(service_models_dir, tmp_path_factory) -> Path:
    """The dataset made from the local folder: what every HTTP path must reproduce byte for byte."""
    out = tmp_path_factory.mktemp("reference") / "data"
    from service.__main__ import main

    assert (
        main(
            [
                "generate",
                "--quiet",
                *local(service_models_dir),
                "--out",
                str(out),
                *map(str, SPEC),
                "--min-realness",
                "0.3",
                "--realness",
            ]
        )
        == 0
    )
    return out


def test_one_server_gives_the_bytes_of_the_local_folder(server, reference, tmp_path, capsys):
    out = tmp_path / "http"
    code, printed = run_generate(
        capsys, "--url", server[0], "--token", TOKEN, "--out", out, *SPEC, "--min-realness", "0.3", "--realness"
    )
    assert code == 0, printed
    assert len(files(reference)) == 6 and files(out) == files(reference)  # 3 shards + 3 label files
    assert dataset(out)[1] == dataset(reference)[1]
    totals = manifest(out)["totals"]
    assert totals["samples"] == 100 and totals["drawn"] > totals["samples"]  # the filter rejected some
    # The draw bound the server reported in /models, not the client's own setting.
    assert manifest(out)["spec"]["max_draws_factor"] == SERVER_DRAWS_FACTOR
    assert manifest(reference)["spec"]["max_draws_factor"] == 20
    assert all(s["count"] == s["requested"] for s in manifest(reference)["shards"])  # no block ran out
    # Each shard records the engine that ran its graphs: the server's, as its /models reports it.
    assert {s["engine"] for s in manifest(out)["shards"]} == {"onnxruntime/CPUExecutionProvider"}
    assert manifest(out)["totals"]["engines"] == ["onnxruntime/CPUExecutionProvider"]


def test_a_dead_replica_at_start_is_refused_and_live_replicas_share_the_work(server, reference, tmp_path, capsys):
    out = tmp_path / "replicas"
    with dead_url() as dead:
        code, printed = run_generate(
            capsys,
            "--url",
            server[0],
            "--url",
            dead,
            "--token",
            TOKEN,
            "--out",
            out,
            *SPEC,
            "--min-realness",
            "0.3",
            "--realness",
            "--retries",
            2,
            "--backoff",
            0.01,
        )
    assert code == 2 and f"server {dead} cannot be reached" in printed and "ConnectError" in printed
    assert not out.exists()
    # Two URLs of live replicas (here one server twice) share the shards, 3 at a time.
    code, printed = run_generate(
        capsys,
        "--url",
        server[0],
        "--url",
        server[0] + "/",
        "--token",
        TOKEN,
        "--out",
        out,
        *SPEC,
        "--min-realness",
        "0.3",
        "--realness",
        "--workers",
        3,
    )
    assert code == 0, printed
    assert files(out) == files(reference)


def test_a_dead_replica_mid_run_is_retried_on_the_others(server, reference, tmp_path):
    """A replica that goes away after the start: requests alternate between it and a live one,
    each that fails is retried on the next replica after a backoff, and the dataset completes."""
    from service.datasets.job import Job
    from service.datasets.plan import DatasetSpec
    from service.datasets.sources import HttpSource

    source = HttpSource([server[0]], None, TOKEN, retries=3, backoff_s=0.01)
    spec = DatasetSpec(
        model=source.card.name,
        model_version=source.card.files["generator"].sha256,
        base_seed=21,
        samples=100,
        shard_size=40,
        block_size=16,
        filter={"min_realness": 0.3},
        realness=True,
    )
    try:
        with dead_url() as dead:
            source.urls.append(dead)  # joined the pool, then died
            result = Job(source, spec, tmp_path / "retried", workers=2, progress=False).run()
    finally:
        source.close()
    assert len(result.made) == 3 and source.failed_attempts > 0  # about half the first tries hit the dead one
    assert files(tmp_path / "retried") == files(reference)


def _http_dataset(url: str, out: Path, cacheable: bool = True, **spec) -> dict:
    """A dataset from the server through HttpSource and the Job: the blocks fetched per method."""
    from service.datasets.job import Job
    from service.datasets.plan import DatasetSpec
    from service.datasets.sources import HttpSource

    source = HttpSource([url], None, TOKEN, cacheable=cacheable)
    try:
        dataset_spec = DatasetSpec(model=source.card.name, model_version=source.card.files["generator"].sha256, **spec)
        assert len(Job(source, dataset_spec, out, workers=2, progress=False).run().made) == dataset_spec.num_shards
    finally:
        source.close()
    return dict(source.methods)


def test_blocks_go_by_cacheable_get_and_give_the_bytes_of_post_and_of_the_local_folder(server, reference, tmp_path):
    """Every block a pinned GET /sample (the request a cache in front may keep), with the filter's
    floats and the realness of POST /score: the same files as POST's blocks and the local folder's."""
    spec = dict(base_seed=21, samples=100, shard_size=40, block_size=16, realness=True)
    filtered = spec | {"filter": {"min_realness": 0.3}, "max_draws_factor": SERVER_DRAWS_FACTOR}
    assert _http_dataset(server[0], tmp_path / "get", **filtered) == {"GET": 8}  # 3 + 3 + 2 blocks
    assert _http_dataset(server[0], tmp_path / "post", cacheable=False, **filtered) == {"POST": 8}
    assert len(files(reference)) == 6 and files(tmp_path / "get") == files(tmp_path / "post") == files(reference)
    # DRS with a gamma, truncation: floats that a query must carry exactly.
    drs = spec | {
        "filter": {"drs": True, "drs_gamma": 0.35},
        "truncation": 0.7,
        "max_draws_factor": SERVER_DRAWS_FACTOR,
    }
    assert _http_dataset(server[0], tmp_path / "drs-get", **drs) == {"GET": 8}
    assert _http_dataset(server[0], tmp_path / "drs-post", cacheable=False, **drs) == {"POST": 8}
    assert files(tmp_path / "drs-get") == files(tmp_path / "drs-post")
    assert dataset(tmp_path / "drs-get")[0].tobytes() != dataset(tmp_path / "get")[0].tobytes()


def test_a_model_swapped_mid_run_fails_the_run_naming_the_version(tmp_path, capsys):
    """Blocks pin the version the run started with: once the server serves another one (model
    control swapped its folder), the next block is refused (409) and the run ends saying so, its
    complete shards all of the first version; rerun, the dataset is refused as another one."""
    from service.datasets.job import Job
    from service.datasets.plan import DatasetSpec
    from service.datasets.sources import HttpSource, SourceError

    live, stage = tmp_path / "models", tmp_path / "stage"
    for k in range(2):
        make_model(stage / f"v{k}", "m", z_dim=4, seed=100 + k)
    install(stage / "v0" / "m", live / "m")
    env = real_server_env(
        live, tmp_path, GANSERVE_DEFAULT_MODEL="m", GANSERVE_MODEL_CONTROL="poll", GANSERVE_POLL_INTERVAL_S="0.2"
    )

    class SwappedAfterTwoBlocks(HttpSource):
        """The server's model is replaced between this source's second and third block."""

        fetched = 0

        def block(self, *args, **kwargs):
            if self.fetched == 2:
                install(stage / "v1" / "m", live / "m")
                deadline = time.monotonic() + 60
                while self.client.models()["models"][0]["version"] == self.card.version:
                    assert time.monotonic() < deadline, "the server never took the new version"
                    time.sleep(0.1)
            self.fetched += 1
            return super().block(*args, **kwargs)

    out = tmp_path / "data"
    with start_server(live, env, tmp_path) as running:
        source = SwappedAfterTwoBlocks([running.url], None, TOKEN)
        first = source.card.version
        spec = DatasetSpec(
            model="m",
            model_version=source.card.files["generator"].sha256,
            base_seed=1,
            samples=48,
            shard_size=16,
            block_size=8,
        )
        try:
            with pytest.raises(SourceError) as failed:
                Job(source, spec, out, workers=1, progress=False).run()
        finally:
            source.close()
        now = httpx.get(f"{running.url}/models", headers=AUTH).json()["models"][0]["version"]
        code, printed = run_generate(
            capsys,
            "--url",
            running.url,
            "--token",
            TOKEN,
            "--out",
            out,
            "--samples",
            48,
            "--shard-size",
            16,
            "--block-size",
            8,
            "--seed",
            1,
        )
    message = str(failed.value)
    assert now != first and source.methods == {"GET": 2}
    assert message.startswith(
        f"a server refused version {first} of model 'm', the version this dataset is made with "
        "(was the model updated mid-run?): GET http://127.0.0.1:"
    )
    assert f"(HTTP 409): version: model 'm' no longer serves version '{first}' (now serving '{now}')" in message
    # Shard 0 (blocks 1 and 2) of the first version, and nothing of shard 1 or of the second version.
    assert [s["index"] for s in manifest(out)["shards"]] == [0] and manifest(out)["model"]["version"] == first
    assert sorted(p.name for p in out.iterdir()) == [".manifest.lock", "manifest.json", "shard-00000.npy"]
    assert code == 2 and "describes another dataset" in printed and "model_version" in printed, printed


def test_server_failures_end_with_a_clear_message_and_no_partial_shard(server, tmp_path, capsys):
    base = server[0]
    nobody_there = contextlib.ExitStack()
    cases = [
        (["--url", nobody_there.enter_context(dead_url()), "--retries", 1, "--backoff", 0.01], 2, "cannot be reached"),
        (
            ["--url", base, "--model", "nope"],
            2,
            "unknown model 'nope'; models there: faulty, tiny-cond, tiny-digits, tiny-ring",
        ),
        (["--url", base, "--model", "broken"], 2, "model 'broken' is unavailable"),
        (["--url", base, "--token", "wrong"], 2, "refused (HTTP 401)"),
        # 5xx on every try (this model fails inside onnxruntime for odd batches): retried, then given up.
        (
            ["--url", base, "--model", "faulty", "--block-size", 1, "--retries", 2, "--backoff", 0.01],
            1,
            "failed 3 time(s), giving up; last: " + base + ": HTTP 500",
        ),
        # Over the server's max n (from its /models limits): refused before any request or file.
        (
            ["--url", base, "--block-size", 300, "--shard-size", 300, "--samples", 300],
            2,
            "--block-size: 300 is over the server's max n of 256 (GANSERVE_MAX_N there); use --block-size 256 or less",
        ),
    ]
    with nobody_there:
        for i, (args, want_code, message) in enumerate(cases):
            out = tmp_path / f"case{i}"
            token = [] if "--token" in args else ["--token", TOKEN]
            code, printed = run_generate(capsys, "--samples", 20, "--shard-size", 10, *args, *token, "--out", out)
            assert (code, message in printed) == (want_code, True), printed
            assert "Traceback" not in printed
            leftovers = [p.name for p in out.iterdir()] if out.exists() else []
            assert not [n for n in leftovers if n.startswith("shard-") or TMP_MARK in n], leftovers


def test_the_dataset_task_writes_into_the_servers_folder_and_answers_the_manifest(server, reference):
    base, datasets = server
    body = {
        "name": "digits-100",
        "samples": 100,
        "shard_size": 40,
        "block_size": 16,
        "seed": 21,
        "min_realness": 0.3,
        "labels": True,
    }
    with httpx.Client(base_url=base, headers=AUTH, timeout=30) as http:
        status, result = run_task(http, body)
        assert status == "completed", result.text
        answered = result.json()
        assert answered == manifest(datasets / "digits-100")
        assert answered["totals"]["complete"] == 3 and answered["model"]["name"] == "tiny-digits"
        assert answered["spec"]["max_draws_factor"] == SERVER_DRAWS_FACTOR
        assert answered["totals"]["engines"] == ["onnxruntime/CPUExecutionProvider"]  # the server's own engine
        assert files(datasets / "digits-100") == files(reference)
        # Submitting it again resumes: every shard verified, none rewritten.
        mtimes = {p.name: p.stat().st_mtime_ns for p in (datasets / "digits-100").glob("shard-*")}
        assert run_task(http, body)[0] == "completed"
        assert mtimes == {p.name: p.stat().st_mtime_ns for p in (datasets / "digits-100").glob("shard-*")}
        # Another dataset's options into the same folder, a bad name, an unknown model: failed, named.
        status, result = run_task(http, {**body, "seed": 22})
        assert (status, result.status_code) == ("failed", 409)
        assert "describes another dataset (base_seed: 21 there, 22 now)" in result.json()["error"]
        status, result = run_task(http, {**body, "name": "../escape"})
        assert (status, result.status_code) == ("failed", 400) and result.json()["error"].startswith("name: ")
        status, result = run_task(http, {**body, "name": "other", "model": "nope"})
        assert (status, result.status_code) == ("failed", 404) and "unknown model 'nope'" in result.json()["error"]
        # Nothing else written: the server's own control folders (.jobs: its job slots) aside.
        assert sorted(p.name for p in datasets.iterdir() if not p.name.startswith(".")) == ["digits-100"]
        assert sorted(p.name for p in datasets.iterdir() if p.name.startswith(".")) == [".jobs"]


def test_an_edited_dataset_task_is_the_local_edited_dataset(server, service_models_dir, tmp_path):
    """`edit` on the HTTP task: the same rows as `generate --edit` from the folder; an unknown
    direction and a filter beside an edit fail the task with a 400 naming the field, unwritten."""
    from service.__main__ import main

    out = tmp_path / "local"
    args = ["generate", "--quiet", *local(service_models_dir, "tiny-cond"), "--out", str(out)]
    assert main([*args, "--samples", "10", "--shard-size", "6", "--block-size", "4", "--edit", "pc0:2,pc1:-1"]) == 0
    base, datasets = server
    body = {
        "name": "edited",
        "model": "tiny-cond",
        "samples": 10,
        "shard_size": 6,
        "block_size": 4,
        "edit": [{"direction": "pc0", "amount": 2}, {"direction": "pc1", "amount": -1}],
    }
    with httpx.Client(base_url=base, headers=AUTH, timeout=30) as http:
        status, result = run_task(http, body)
        assert status == "completed", result.text
        assert result.json()["spec"]["edit"] == [["pc0", 2.0], ["pc1", -1.0]]
        assert files(datasets / "edited") == files(out)
        status, result = run_task(http, {**body, "name": "e2", "edit": [{"direction": "nope", "amount": 1}]})
        assert (status, result.status_code) == ("failed", 400)
        assert result.json()["error"].startswith("edit.0.direction: 'nope' is not a direction of tiny-cond")
        status, result = run_task(http, {**body, "name": "e3", "min_realness": 0.2})
        assert (status, result.status_code) == ("failed", 400)
        assert result.json()["error"] == "min_realness: filters do not yet combine with edit"
    assert not (datasets / "e2").exists() and not (datasets / "e3").exists()
