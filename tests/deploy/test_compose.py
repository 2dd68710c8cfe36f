"""docker-compose.yml, checked without a Docker engine.

Debian's docker-compose 1.29 validates the file against the compose specification's schema
(unknown keys are errors) and interpolates it; the tests then read the resolved configuration
and check what each profile promises. 1.29 does not filter `config` by profile, so the
profiles are checked here, on the resolved file, rather than by one `config` run per profile.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / "deploy" / "ganserve.env.example"
HEALTHCHECK_IN_IMAGE = "/home/bentoml/bento/src/deploy/healthcheck.py"  # bento's src/ in the image

# Every service belongs to exactly one profile: `docker compose --profile P up` starts P only.
PROFILES = {
    "gpu": {"ganserve"},
    "cpu": {"ganserve-cpu"},
    "scale": {"replica", "proxy"},
    "scale-cpu": {"replica-cpu", "proxy-cpu"},
    "jobs": {"generate"},
}
SERVERS = {"ganserve", "ganserve-cpu", "replica", "replica-cpu"}
GPU_SERVICES = {"ganserve", "replica"}
PROXIES = {"proxy": "replica", "proxy-cpu": "replica-cpu"}
IMAGE_SERVICES = SERVERS | {"generate"}


def compose(
    docker_compose: str,
    tmp_path: Path,
    *args: str,
    env: dict | None = None,
    compose_file: Path = COMPOSE_FILE,
    env_file: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run docker-compose with only the given variables: nothing leaks in from the developer's
    shell or a local .env (an empty --env-file replaces it)."""
    if env_file is None:
        env_file = tmp_path / "empty.env"
        env_file.write_text("")
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **(env or {})}
    return subprocess.run(
        [docker_compose, "--env-file", str(env_file), "-f", str(compose_file), *args],
        capture_output=True,
        text=True,
        env=clean,
        timeout=60,
    )


def resolve(docker_compose: str, tmp_path: Path, **env: str) -> dict:
    result = compose(docker_compose, tmp_path, "config", env={"GANSERVE_IMAGE": "ganserve:test", **env})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def resolved(docker_compose: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return resolve(docker_compose, tmp_path_factory.mktemp("compose"))


# Every knob turned at once (one docker-compose run instead of one per knob).
CUSTOM = {
    "GANSERVE_API_TOKEN": "s3cret",
    "GANSERVE_WORKERS": "3",
    "GANSERVE_BIND": "0.0.0.0",
    "GANSERVE_PORT": "8000",
    "GANSERVE_REPLICAS": "5",
    "GANSERVE_DATASETS": "/srv/datasets",
}


@pytest.fixture(scope="module")
def customized(docker_compose: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return resolve(docker_compose, tmp_path_factory.mktemp("compose"), **CUSTOM)


def volumes_by_target(service: dict) -> dict[str, tuple[str, str]]:
    """1.29 writes volumes as "source:target[:mode]"; map target -> (source, mode)."""
    out = {}
    for spec in service.get("volumes", []):
        source, target, *mode = spec.split(":")
        out[target] = (source, mode[0] if mode else "rw")
    return out


def test_compose_file_validates(docker_compose: str, tmp_path: Path) -> None:
    result = compose(docker_compose, tmp_path, "config", "-q", env={"GANSERVE_IMAGE": "ganserve:test"})
    assert result.returncode == 0, result.stderr


def test_the_validator_rejects_unknown_keys(docker_compose: str, tmp_path: Path) -> None:
    # Guards the test above: a misspelt key must fail validation, or "validates" proves nothing.
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text()
    assert "    restart: unless-stopped\n" in text
    broken.write_text(text.replace("    restart: unless-stopped\n", "    restart_policy: unless-stopped\n", 1))
    result = compose(
        docker_compose, tmp_path, "config", "-q", env={"GANSERVE_IMAGE": "ganserve:test"}, compose_file=broken
    )
    assert result.returncode != 0
    assert "restart_policy" in result.stderr


def test_without_any_variable_the_image_is_the_one_containerize_tagged(docker_compose: str, tmp_path: Path) -> None:
    """`docker compose --profile cpu up` right after the documented build needs no variable."""
    result = compose(docker_compose, tmp_path, "config", env={})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {services[name]["image"] for name in IMAGE_SERVICES} == {"ganserve:latest"}
    assert (
        "bentoml containerize ganserve:latest --image-tag ganserve:latest" in (REPO / "docs/DEPLOYMENT.md").read_text()
    )


def test_the_env_example_validates_and_documents_every_variable(docker_compose: str, tmp_path: Path) -> None:
    result = compose(docker_compose, tmp_path, "config", "-q", env_file=ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    used = set(re.findall(r"\$\{(GANSERVE_[A-Z_]+)", COMPOSE_FILE.read_text()))
    used |= {name for name in re.findall(r"^\s+(GANSERVE_[A-Z_]+):\s*$", COMPOSE_FILE.read_text(), re.M)}
    documented = set(re.findall(r"^#?\s*(GANSERVE_[A-Z_]+)=", ENV_EXAMPLE.read_text(), re.M))
    assert used, "the pattern found no variables: it no longer matches docker-compose.yml"
    assert used <= documented, f"not in {ENV_EXAMPLE.name}: {sorted(used - documented)}"


def test_every_service_is_in_exactly_one_profile(resolved: dict) -> None:
    found: dict[str, set[str]] = {}
    for name, service in resolved["services"].items():
        assert len(service.get("profiles", [])) == 1, f"{name}: profiles {service.get('profiles')}"
        found.setdefault(service["profiles"][0], set()).add(name)
    assert found == PROFILES


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_gpu_services_reserve_an_nvidia_gpu_and_cpu_services_none(resolved: dict, name: str) -> None:
    service = resolved["services"][name]
    devices = service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    if name in GPU_SERVICES:
        assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
        assert service["environment"]["GANSERVE_DEVICE"] == "cuda"
    else:
        assert devices == []
        assert service["environment"]["GANSERVE_DEVICE"] == "cpu"


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_servers_are_health_checked_on_readyz_restarted_and_logged(resolved: dict, name: str) -> None:
    service = resolved["services"][name]
    test = service["healthcheck"]["test"]
    # The image has no curl: the check runs deploy/healthcheck.py, shipped in the bento, with python.
    assert test[:3] == ["CMD", "python", HEALTHCHECK_IN_IMAGE]
    assert test[3].endswith(":3000/readyz")
    assert (REPO / "deploy" / "healthcheck.py").is_file()
    assert "deploy/healthcheck.py" in yaml.safe_load((REPO / "bentofile.yaml").read_text())["include"]
    assert service["restart"] == "unless-stopped"
    assert service["logging"]["driver"] == "json-file"


@pytest.mark.parametrize("name", sorted(IMAGE_SERVICES))
def test_models_come_from_a_read_only_volume(resolved: dict, name: str) -> None:
    service = resolved["services"][name]
    assert service["image"] == "ganserve:test"
    source, mode = volumes_by_target(service)["/models"]
    assert (source, mode) == (str(REPO / "models"), "ro")
    assert service["environment"]["GANSERVE_MODELS_DIR"] == "/models"


def test_the_containers_get_exactly_the_service_settings(resolved: dict) -> None:
    # A misspelt name would be ignored by the service (extra="ignore"), silently; a setting
    # added to the service but not here could not be set in a deployment.
    from service.settings import Settings

    known = {f"GANSERVE_{field.upper()}" for field in Settings.model_fields}
    for name in IMAGE_SERVICES:
        assert set(resolved["services"][name]["environment"]) == known, name


def test_the_scale_replicas_say_their_proxy_keys_its_cache_on_the_token(resolved: dict) -> None:
    for name in ("replica", "replica-cpu"):
        assert resolved["services"][name]["environment"]["GANSERVE_SHARED_CACHE_KEYS_TOKEN"] == "true"
    assert resolved["services"]["ganserve"]["environment"]["GANSERVE_SHARED_CACHE_KEYS_TOKEN"] is None


def test_optional_settings_pass_through_only_when_set(resolved: dict, customized: dict) -> None:
    # Unset: no value at all, so the service's default applies (an empty string would not).
    assert resolved["services"]["ganserve"]["environment"]["GANSERVE_API_TOKEN"] is None
    for name in IMAGE_SERVICES:
        env = customized["services"][name]["environment"]
        assert (env["GANSERVE_API_TOKEN"], env["GANSERVE_WORKERS"]) == ("s3cret", "3")


def test_published_ports_default_to_loopback_and_follow_the_env(resolved: dict, customized: dict) -> None:
    published = {"ganserve": "3000", "ganserve-cpu": "3000", "proxy": "8080", "proxy-cpu": "8080"}
    for name, target in published.items():
        assert resolved["services"][name]["ports"] == [f"127.0.0.1:3000:{target}/tcp"]
        assert customized["services"][name]["ports"] == [f"0.0.0.0:8000:{target}/tcp"]
    for name in ("replica", "replica-cpu", "generate"):
        assert "ports" not in resolved["services"][name]  # reachable through the proxy only


def test_replica_count_follows_the_env(resolved: dict, customized: dict) -> None:
    for name in ("replica", "replica-cpu"):
        assert resolved["services"][name]["deploy"]["replicas"] == 2
        assert customized["services"][name]["deploy"]["replicas"] == 5


@pytest.mark.parametrize("proxy,replica", sorted(PROXIES.items()))
def test_proxies_start_once_their_replicas_are_healthy(resolved: dict, proxy: str, replica: str) -> None:
    service = resolved["services"][proxy]
    assert service["depends_on"] == {replica: {"condition": "service_healthy"}}
    # nginx forwards to the replica service's name, on the port the replicas serve.
    assert service["environment"]["GANSERVE_UPSTREAMS"] == f"{replica}:3000"
    assert "3000" in resolved["services"][replica]["expose"]
    # The config it renders is the one tests/deploy/test_proxy.py runs for real.
    source, mode = volumes_by_target(service)["/etc/ganserve"]
    assert (source, mode) == (str(REPO / "deploy" / "nginx"), "ro")
    command = " ".join(service["command"])
    assert "sh /etc/ganserve/render.sh /etc/ganserve/ganserve.conf.template" in command
    assert (REPO / "deploy/nginx/render.sh").is_file() and (REPO / "deploy/nginx/ganserve.conf.template").is_file()
    assert service["environment"]["GANSERVE_PROXY_LISTEN"] == "8080"
    assert service["healthcheck"]["test"][0] == "CMD-SHELL"
    assert "http://127.0.0.1:8080/readyz" in service["healthcheck"]["test"][1]


@pytest.mark.parametrize("name", sorted(IMAGE_SERVICES))
def test_datasets_land_in_the_output_volume(resolved: dict, customized: dict, name: str) -> None:
    # Servers (their dataset task) and jobs alike write under /datasets.
    service = resolved["services"][name]
    assert volumes_by_target(service)["/datasets"] == ("datasets", "rw")
    assert service["environment"]["GANSERVE_OUTPUT_DIR"] == "/datasets"
    assert "datasets" in resolved["volumes"]
    # A path instead of a volume name makes it a bind mount of that host directory.
    assert volumes_by_target(customized["services"][name])["/datasets"] == ("/srv/datasets", "rw")


def test_the_dataset_job_runs_the_generate_command_once(resolved: dict) -> None:
    job = resolved["services"]["generate"]
    assert job["command"][:4] == ["python", "-m", "service", "generate"]
    assert job["working_dir"] == "/home/bentoml/bento/src"  # where the bento puts `service/`
    assert job["restart"] == "no"
    assert "healthcheck" not in job
