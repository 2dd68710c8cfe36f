"""bentofile.yaml: `bentoml build` from what a clone holds, and what the bento carries.

The build runs for real (it imports the service and locks the requirements against the package
index), into a temporary BENTOML_HOME. No Docker engine here: the checks read the Dockerfile and
the locked requirements that the build generates, which `bentoml containerize` then uses as is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BENTOFILE = REPO / "bentofile.yaml"
BENTOML = str(Path(sys.executable).with_name("bentoml"))
# Anything from the training side; none of it may reach the serving image.
TRAINING_ONLY = re.compile(
    r"^(torch|torchvision|torchaudio|triton|onnx|onnxscript|safetensors|mlxtend|"
    r"scikit-learn|scipy|matplotlib|nvidia-cuda-cupti-cu\d+|nvidia-nccl-cu\d+)==",
    re.M,
)


def pins(path: Path) -> dict[str, str]:
    """name -> the `name==version` line, from a requirements/constraints file."""
    out = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==", line.strip())
        if match:
            out[match.group(1).lower().replace("_", "-")] = line.strip()
    return out


def clone_tree(dest: Path) -> Path:
    """Copy what a fresh clone would hold: tracked files and new files git does not ignore
    (so a build that leans on .venv, caches or local outputs fails here as it would in CI)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():  # a tracked file deleted in the working tree is listed, but absent
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bento's directory, built from a clone-like copy of the repository."""
    context = clone_tree(tmp_path_factory.mktemp("clone"))
    home = tmp_path_factory.mktemp("bentoml-home")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    result = subprocess.run(
        [BENTOML, "build", str(context)], cwd=context, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    built = [p for p in (home / "bentos" / "ganserve").iterdir() if p.name != "latest"]
    assert len(built) == 1
    return built[0]


def test_bentofile_pins_the_serving_dependencies_as_pyproject_and_constraints_do() -> None:
    # Three places name the serving dependencies; this keeps them in step.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {re.split(r"[\[=<>!~ ]", d)[0].lower() for d in project["dependencies"]}
    constraints = pins(REPO / "constraints.txt")
    packages = yaml.safe_load(BENTOFILE.read_text())["python"]["packages"]
    bentofile = {re.split(r"[\[=]", p)[0].lower(): p for p in packages}
    # BentoML adds itself, at the version that builds the bento (checked below, after a build).
    assert set(bentofile) == base - {"bentoml"}
    for name, spec in bentofile.items():
        version = constraints[name].split("==")[1]
        assert spec.endswith(f"=={version}"), f"{spec}: constraints.txt pins {constraints[name]}"
    assert (
        bentofile["onnxruntime-gpu"] == f"onnxruntime-gpu[cuda,cudnn]=={constraints['onnxruntime-gpu'].split('==')[1]}"
    )
    assert project["optional-dependencies"]["cuda"] == [bentofile["onnxruntime-gpu"]]


def test_the_bento_carries_the_service_models_and_healthcheck_only(bento: Path) -> None:
    src = bento / "src"
    assert (src / "service" / "service.py").is_file()
    for page in (REPO / "service" / "http" / "ui" / "static").iterdir():  # the playground's files (no build step)
        assert (src / "service" / "http" / "ui" / "static" / page.name).read_bytes() == page.read_bytes()
    assert (src / "models" / "card.py").is_file()
    assert sorted(p.name for p in (src / "deploy").iterdir()) == ["healthcheck.py"]
    assert {p.name for p in src.iterdir()} <= {"service", "models", "deploy", "bentofile.yaml"}
    assert not list(src.rglob("__pycache__"))
    # Every model folder of the repository ships in the bento, byte for byte.
    for card in (REPO / "models").glob("*/model.json"):
        for f in card.parent.iterdir():
            assert (src / "models" / card.parent.name / f.name).read_bytes() == f.read_bytes()


def test_the_bento_names_the_service_and_uses_the_image_builder(bento: Path) -> None:
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert info["service"] == "service.service:GanServe"
    assert info["name"] == "ganserve"
    # spec 2 is BentoML's current image builder; the legacy one (used when bentofile has
    # docker.cuda_version or a dockerfile_template) writes spec 1.
    assert info["spec"] == 2
    assert info["image"]["base_image"] == "python:3.11-slim"


def test_the_locked_requirements_bring_cuda_wheels_and_no_torch(bento: Path) -> None:
    locked = (bento / "env" / "python" / "requirements.txt").read_text()
    constraints = pins(REPO / "constraints.txt")
    assert constraints["onnxruntime-gpu"] in locked.splitlines()
    assert constraints["bentoml"] in locked.splitlines()
    # The [cuda,cudnn] extras resolved to NVIDIA's wheels: the CUDA runtime, cuBLAS and cuDNN.
    for wheel in ("nvidia-cuda-runtime", "nvidia-cublas", "nvidia-cudnn-cu"):
        assert re.search(rf"^{wheel}[\w-]*==", locked, re.M), f"{wheel} is not in the locked requirements"
    assert not re.search(r"^onnxruntime==", locked, re.M), "the CPU onnxruntime must not sit beside -gpu"
    assert not TRAINING_ONLY.search(locked), TRAINING_ONLY.search(locked)


def test_the_dockerfile_installs_the_locked_requirements_on_python_slim(bento: Path) -> None:
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert "nvidia/cuda" not in dockerfile  # the deprecated cuda_version base image
    assert "pip install -r $BENTO_PATH/env/python/requirements.txt" in dockerfile
    assert "torch" not in dockerfile
    assert "ENV GANSERVE_MODELS_DIR=" in dockerfile
    assert re.search(r"^ARG GANSERVE_MODELS_DIR=/home/bentoml/bento/src/models$", dockerfile, re.M)
    # deploy/image-setup.sh runs (as root, before USER) and creates the mount points.
    scripts = list((bento / "env" / "docker").glob("script__*"))
    assert len(scripts) == 1 and scripts[0].read_bytes() == (REPO / "deploy" / "image-setup.sh").read_bytes()
    assert dockerfile.index(scripts[0].name) < dockerfile.index("USER bentoml")
    # compose's healthcheck runs /home/bentoml/bento/src/deploy/healthcheck.py: the bento's src/.
    assert "ARG BENTO_PATH=/home/bentoml/bento" in dockerfile
    assert (bento / "src" / "deploy" / "healthcheck.py").read_bytes() == (
        REPO / "deploy" / "healthcheck.py"
    ).read_bytes()
