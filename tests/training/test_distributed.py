"""Training on several processes (training/distributed.py) with the real launcher, torchrun, and the
gloo backend on the CPU: two processes follow one on the same global batch, a killed rank brings
the group back from the last checkpoint, a diverging run stops every rank and keeps its last good
checkpoint, the style preset (R1 through DDP, augmentation, EMA) trains; and mixed precision
(training/precision.py): bf16 autocast on the CPU, fp16 refused there, CUDA runs marked `gpu`.

The tolerance of the agreement test: with the same global batch, the two ranks' rows are exactly
the rows one process takes (training/sharding.py) and so are the latents, and DDP averages the two
halves' gradients, which is the whole batch's mean gradient up to float32 rounding (the sums run
in another order). Measured here after 200 steps of Adam with R1 on every other D update: 6e-8 on
weights of size up to ~7. TOLERANCE = 1e-5 leaves room for other BLAS builds and thread counts, and
is still far below what a real mistake gives: leaving R1 out moves D's weights by 4e-3 within 10
steps, and other rows or latents move them by far more.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.training.test_data import write_pngs
from tests.training.test_style import TINY as TINY_STYLE
from training.__main__ import main
from training.checkpoint import checkpoint_dirs, latest_checkpoint, load_run
from training.distributed import Ranks, per_rank_batch
from training.divergence import check_weights, reduce_and_check
from training.errors import TrainingError
from training.presets import resolve
from training.sharding import PassOrder
from training.trainer import train

REPO = Path(__file__).resolve().parents[2]
# The paper-style MLP pair on scikit-learn's digits, without dropout (dropout draws per rank), with
# R1 every other D update and G's weight average: 13 steps an epoch at the global batch of 100.
DIGITS = [
    "network.g_hidden=[32]",
    "network.d_hidden=[32]",
    "network.d_hidden_dropout=0",
    "batch_size=100",
    "d_r1_gamma=1",
    "d_r1_every=2",
    "g_ema_decay=0.9",
]
STEPS = 200  # long enough for the kill test to find the run mid-way after its first checkpoint
TOLERANCE = 1e-5
STATE_FILES = ("generator", "discriminator", "generator_ema", "optim_d", "optim_g")
STYLE_TINY = [*TINY_STYLE, "d_r1_every=2"]  # test_style's tiny networks, R1 at every other D update


@pytest.fixture(autouse=True)
def one_thread(torch_single_thread):
    yield


def torchrun_args(preset: str, out: Path, overrides: list[str], steps: int, nproc: int = 2, restarts: int = 0) -> list:
    sets = [a for o in overrides for a in ("--set", o)]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        f"--max-restarts={restarts}",
        "-m",
        "training",
        "train",
        "--preset",
        preset,
        "--out",
        str(out),
        "--max-steps",
        str(steps),
        "--threads",
        "1",
        "--quiet",
        *sets,
    ]


def launch_env() -> dict:
    # One thread per process (torchrun would set it, with a banner); the repo importable.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start(args: list, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=REPO, env=launch_env(), text=True, **kwargs)


def stop(launcher: subprocess.Popen) -> None:
    """The launcher and the workers it started, if still running (a failed test leaves none behind)."""
    import psutil

    if launcher.poll() is not None:
        return
    for child in psutil.Process(launcher.pid).children(recursive=True):
        child.kill()
    launcher.kill()
    launcher.wait()


def torchrun(preset: str, out: Path, overrides: list[str], steps: int, nproc: int = 2) -> subprocess.CompletedProcess:
    launcher = start(
        torchrun_args(preset, out, overrides, steps, nproc), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        stdout, stderr = launcher.communicate(timeout=300)
    finally:
        stop(launcher)
    return subprocess.CompletedProcess(launcher.args, launcher.returncode, stdout, stderr)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def largest_difference(a: Path, b: Path, name: str) -> float:
    wa, wb = load_file(a / f"{name}.safetensors"), load_file(b / f"{name}.safetensors")
    assert wa.keys() == wb.keys(), name
    return max(((wa[k].double() - wb[k].double()).abs().max().item() for k in wa), default=0.0)


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory) -> Path:
    from tests.conftest import single_threaded_torch

    out = tmp_path_factory.mktemp("one") / "run"
    with single_threaded_torch():
        train(resolve("digits", DIGITS), out, max_steps=STEPS, progress=False)
    return out


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("two") / "run"
    proc = torchrun("digits", out, DIGITS, STEPS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stderr


# ---- the pieces, without a process group ----


def test_the_ranks_batches_together_are_the_single_process_batch():
    n, m = 1397, 100
    one = PassOrder(n, 0, 1, seed=1)
    halves = [PassOrder(n, r, 2, seed=1) for r in range(2)]
    assert one.usable == 1397 and halves[0].usable == 1396  # both leave 13 whole batches of 100
    for p in (0, 1):
        single, shards = one.shard(p), [h.shard(p) for h in halves]
        for b in range(n // m):
            batch = single[b * m : (b + 1) * m]
            for r in range(2):
                # rank r's rows of update b are rows r, r + 2, ... of the single process's batch
                assert torch.equal(shards[r][b * m // 2 : (b + 1) * m // 2], batch[r::2])
    assert not torch.equal(one.shard(0), one.shard(1))  # set_epoch: each pass its own order
    # pass 0 is the permutation the trainer drew before it used a DistributedSampler (seed + 1)
    assert torch.equal(one.shard(0), torch.randperm(n, generator=torch.Generator().manual_seed(1)))


def test_a_global_batch_that_does_not_split_is_refused_naming_the_preset_and_the_processes():
    assert per_rank_batch(resolve("ring8"), 2) == 128
    with pytest.raises(TrainingError, match=r"batch_size: ring8's global batch of 250 does not split over 4 processes"):
        per_rank_batch(resolve("ring8", ["batch_size=250"]), 4)
    with pytest.raises(TrainingError, match=r"ring8-pac's global batch of 8 gives 2 per process on 4 .*multiple of 16"):
        per_rank_batch(resolve("ring8-pac", ["batch_size=8"]), 4)


def test_fp16_on_the_cpu_is_refused_naming_the_flag(tmp_path, capsys):
    args = ["train", "--preset", "ring8", "--out", str(tmp_path / "run"), "--precision", "fp16"]
    assert main(args + ["--set", "device=cpu", "--max-steps", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--precision fp16" in err and "needs a CUDA device" in err and "Traceback" not in err
    assert main(["train", "--preset", "ring8", "--dry-run", "--precision", "bf16"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "bf16"


def test_bf16_autocast_on_the_cpu_trains_and_the_exported_card_records_it(tmp_path):
    from models.card import read_card
    from training.export import export_run

    tiny = ["network.g_hidden=[16]", "network.d_hidden=[16]", "device=cpu", "d_r1_gamma=1"]
    runs = {
        p: train(resolve("ring8", tiny + [f"precision={p}"]), tmp_path / p, max_steps=20, progress=False)
        for p in ("fp32", "bf16")
    }
    weights = {p: load_file(latest_checkpoint(r) / "generator.safetensors") for p, r in runs.items()}
    assert all(torch.isfinite(w).all() for ws in weights.values() for w in ws.values())
    # bf16 keeps 8 bits of mantissa: the same run drifts away from fp32's, so autocast really ran
    assert max((weights["fp32"][k] - weights["bf16"][k]).abs().max().item() for k in weights["fp32"]) > 1e-4
    assert all(0 < row["d_real"] < 1 for row in metrics(runs["bf16"]))
    folder = export_run(runs["bf16"], name="tiny-bf16", out_dir=tmp_path / "models", progress=False)
    assert read_card(folder).training.config["precision"] == "bf16"
    with pytest.raises(TrainingError, match="precision differ"):  # one precision per run (the card says which)
        train(resolve("ring8", tiny + ["precision=fp32"]), runs["bf16"], max_steps=30, progress=False)


def test_a_checkpoint_from_before_the_sampler_resumes(tmp_path):
    """Runs that were checkpointed by the trainer before this change (the emoji run) go on: their
    loop state named its own permutation, not a pass of the sampler."""
    config = resolve("digits", DIGITS)
    run = train(config, tmp_path / "run", max_steps=5, progress=False)
    state_path = latest_checkpoint(run) / "state.json"
    state = json.loads(state_path.read_text())
    loop = state["loop"]
    state["loop"] = {"pos": loop["pos"], "sums": loop["sums"], "has_perm": True}  # the old format
    state_path.write_text(json.dumps(state))
    train(config, run, max_steps=20, progress=False)
    assert load_run(run).step == 20 and metrics(run)[-1]["step"] == 20


# ---- with a gloo process group: the collectives themselves ----


def _collectives_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    ranks, said = Ranks(rank, world), {}
    try:
        said["mean"] = reduce_and_check(torch.tensor([1.0 + rank, 2.0]), ("d_loss", "r1"), "step 3", ranks, None)
        try:  # a NaN on rank 1 only
            reduce_and_check(
                torch.tensor([0.5, math.nan if rank == 1 else 0.1]), ("d_loss", "r1"), "step 7, epoch 2", ranks, None
            )
            said["nan"] = "went on"
        except TrainingError as e:
            said["nan"] = str(e)
        net = torch.nn.Linear(3, 2)
        torch.nn.init.constant_(net.weight, 0.5)
        torch.nn.init.constant_(net.bias, 0.25 if rank == 0 else 0.2500001)  # rank 1 out of step
        try:
            check_weights({"D": net}, "step 9, epoch 3", ranks, Path("run/checkpoints/step-00000008"))
            said["weights"] = "went on"
        except TrainingError as e:
            said["weights"] = str(e)
    finally:
        dist.destroy_process_group()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(said))


def test_a_nan_on_one_rank_stops_every_rank_naming_the_loss(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_collectives_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    said = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for s in said:
        assert s["mean"] == [1.5, 2.0]  # the mean of the two ranks' batch means
        assert s["nan"].startswith("step 7, epoch 2: r1 is nan (the mean over 2 processes); the run diverged")
        assert s["nan"].endswith("no checkpoint was written")
        assert "rank 1's weights differ from rank 0's" in s["weights"] and "not saving" in s["weights"]


# ---- real runs under torchrun ----


def test_two_processes_follow_one_process_on_the_same_global_batch(one_process_run, two_process_run):
    two, stderr = two_process_run
    assert "digits: global batch 100 (2 processes x 50, gloo) on cpu" in stderr
    one_ckpts, two_ckpts = checkpoint_dirs(one_process_run), checkpoint_dirs(two)
    assert [p.name for p in one_ckpts] == [p.name for p in two_ckpts] == ["step-00000195", "step-00000200"]
    for name in STATE_FILES:  # G, D, G's average and both optimisers' moments (R1 on every other D update)
        assert largest_difference(one_ckpts[-1], two_ckpts[-1], name) < TOLERANCE, name
    rows_one, rows_two = metrics(one_process_run), metrics(two)
    assert [(r["epoch"], r["step"]) for r in rows_two] == [(r["epoch"], r["step"]) for r in rows_one]
    assert len(rows_two) == 16  # 15 epochs and the partial one, each written once: by rank 0 alone
    for a, b in zip(rows_one, rows_two):
        for key in ("d_real", "d_fake", "loss_d", "loss_g"):
            assert abs(a[key] - b[key]) < TOLERANCE, (a["epoch"], key)


def _worker_of_rank(launcher: subprocess.Popen, rank: int):
    import psutil

    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            env = child.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if env.get("RANK") == str(rank) and "training" in child.cmdline():
            return child
    return None


@pytest.mark.slow
def test_a_killed_rank_restarts_the_group_from_the_last_checkpoint(two_process_run, tmp_path):
    """torchrun --max-restarts 1: rank 1 is killed once a checkpoint exists; the agent stops rank 0,
    starts both again, they resume from the last checkpoint, and the run ends where the
    uninterrupted one did, bit for bit (every rank's generator state is in the checkpoint)."""
    out = tmp_path / "run"
    launcher = start(
        torchrun_args("digits", out, DIGITS, STEPS, restarts=1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 180
        while not checkpoint_dirs(out) and launcher.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        victim = _worker_of_rank(launcher, 1)
        assert victim is not None, "rank 1 had already finished: the run is too short to be killed mid-way"
        killed_after = checkpoint_dirs(out)[-1].name
        victim.send_signal(signal.SIGKILL)
        output, _ = launcher.communicate(timeout=240)
    finally:
        stop(launcher)
    assert launcher.returncode == 0, output[-3000:]
    assert killed_after != "step-00000200"
    assert "torchrun restart 1" in output and "resuming from checkpoints/step-" in output
    two, _ = two_process_run
    for name in STATE_FILES:
        assert largest_difference(latest_checkpoint(two), latest_checkpoint(out), name) == 0.0, name
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]
    assert strip(metrics(out)) == strip(metrics(two))  # rows past the checkpoint were written again, once


def test_a_diverging_run_stops_every_rank_at_the_same_step_and_keeps_its_last_good_checkpoint(tmp_path):
    # SGD at lr 10 on ring8, one step an epoch (so a checkpoint every step): D's loss overflows at a
    # step well past the first checkpoints.
    absurd = [
        "network.g_hidden=[16]",
        "network.d_hidden=[16]",
        "batch_size=20000",
        "g_optim.kind=sgd",
        "g_optim.lr=10",
        "d_optim.kind=sgd",
        "d_optim.lr=10",
        "grid_samples=16",
    ]
    with pytest.raises(TrainingError) as single:
        train(resolve("ring8", absurd), tmp_path / "one", max_steps=30, progress=False)
    failed = int(str(single.value).split(",")[0].removeprefix("step "))
    assert failed > 2 and f"step {failed}, epoch {failed}: d_loss is " in str(single.value)
    proc = torchrun("ring8", tmp_path / "two", absurd, 30)
    assert proc.returncode != 0
    expected = f"train: error (rank 0/2): step {failed}, epoch {failed}: d_loss is "
    assert expected in proc.stderr and "(the mean over 2 processes)" in proc.stderr, proc.stderr[-3000:]
    kept = f"its last good checkpoint, checkpoints/step-{failed - 1:08d}, is kept"
    assert kept in proc.stderr
    for run in (tmp_path / "one", tmp_path / "two"):
        last = latest_checkpoint(run)
        assert last.name == f"step-{failed - 1:08d}"  # nothing after the failing step
        weights = load_run(run)
        assert all(
            torch.isfinite(p).all() for net in (weights.generator, weights.discriminator) for p in net.parameters()
        )


@pytest.mark.slow
def test_the_style_preset_trains_on_two_processes_with_r1_augmentation_and_ema(tmp_path):
    """The R1 penalty's double backward through DDP (training/objectives.py), DiffAugment and
    mirrored reals drawn per rank, G's average on rank 0: four steps, R1 on two of them, no hang, the
    ranks' weights identical at every checkpoint (checked by the run itself)."""
    proc = torchrun("emoji-style", tmp_path / "run", STYLE_TINY, 4)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "emoji-style: global batch 8 (2 processes x 4, gloo)" in proc.stderr
    last = latest_checkpoint(tmp_path / "run")
    assert last.name == "step-00000004" and (last / "generator_ema.safetensors").is_file()
    (row,) = metrics(tmp_path / "run")
    assert all(math.isfinite(row[k]) for k in ("d_real", "d_fake", "loss_d", "loss_g"))
    state = json.loads((last / "state.json").read_text())
    assert state["loop"]["world_size"] == 2
    assert {"torch_cpu", "torch_cpu.rank1"} <= load_file(last / "loop.safetensors").keys()


# ---- CUDA: run where a device is lent (bench/gpu/check.sh runs these) ----


def _needs_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")


def _cuda_style_overrides(tmp_path: Path, precision: str) -> list[str]:
    """The tiny style networks on 80 PNGs of our own, on CUDA under `precision`."""
    images = write_pngs(tmp_path / "images", n=80, size=16)
    return STYLE_TINY + [
        "dataset=folder",
        f"dataset_options.path={images}",
        "dataset_options.size=8",
        "conditional=false",
        "device=cuda",
        f"precision={precision}",
    ]


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_trains_the_style_networks_with_r1(precision, tmp_path):
    _needs_cuda()
    overrides = _cuda_style_overrides(tmp_path, precision)
    run = train(resolve("emoji-style", overrides), tmp_path / "run", max_steps=8, progress=False)
    rows = metrics(run)
    assert all(math.isfinite(r[k]) for r in rows for k in ("loss_d", "loss_g"))
    scalers = json.loads((latest_checkpoint(run) / "state.json").read_text())["loop"]["scalers"]
    if precision == "fp16":
        assert scalers["d"]["scale"] > 0 and scalers["g"]["scale"] > 0  # one GradScaler per network
    else:
        assert scalers == {"d": None, "g": None}


@pytest.mark.gpu
def test_torchrun_on_every_gpu_with_nccl_and_bf16(tmp_path):
    _needs_cuda()
    count = torch.cuda.device_count()
    overrides = _cuda_style_overrides(tmp_path, "bf16") + [f"batch_size={8 * count}"]
    proc = torchrun("emoji-style", tmp_path / "run", overrides, 6, nproc=count)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert latest_checkpoint(tmp_path / "run").name == "step-00000006"
    if count > 1:
        assert f"({count} processes x 8, nccl)" in proc.stderr


def test_non_finite_weights_are_named_by_their_module_before_a_checkpoint():
    """check_weights sums every tensor once: the module at fault is found by its share of the sums."""
    modules = {"G": torch.nn.Linear(3, 2), "D": torch.nn.Linear(2, 1), "E": torch.nn.Linear(2, 2)}
    check_weights(modules, "step 4", Ranks(0, 1), None)  # all finite: nothing said
    with torch.no_grad():
        modules["D"].bias.fill_(math.inf)
    with pytest.raises(TrainingError, match=r"^step 4: D's weights are not finite"):
        check_weights(modules, "step 4", Ranks(0, 1), None)
