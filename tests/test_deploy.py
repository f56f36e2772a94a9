"""docker-compose.yml, Dockerfile and nginx.conf: checked with the real tools available here
(no Docker engine runs on this machine; Debian's docker-compose validates the file)."""

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.nginx_lb import NginxLB, nginx_binary
from devtools.replica_process import ROOT
from service.__main__ import refusal
from service.settings import Settings


def compose_config(environment: dict[str, str] | None = None, *overrides: str) -> dict[str, Any]:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (make test installs Debian's package)")
    files = [arg for path in ("docker-compose.yml", *overrides) for arg in ("-f", str(ROOT / path))]
    result = subprocess.run(
        [compose, *files, "config"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**_without_dynacache(os.environ), **(environment or {})},
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


def _without_dynacache(environment: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in environment.items() if "DYNACACHE" not in name}


def test_compose_file_is_valid_and_scalable() -> None:
    services = compose_config()["services"]
    assert set(services) == {"redis", "api", "lb", "prometheus", "grafana"}
    for optional in ("prometheus", "grafana"):  # only with --profile observability
        assert services[optional]["profiles"] == ["observability"]
    redis, api, lb = services["redis"], services["api"], services["lb"]
    assert redis["image"].startswith("redis/redis-stack-server")
    assert "--appendonly yes" in redis["environment"]["REDIS_ARGS"]
    assert any(
        str(volume).endswith(":/data") or "/data" in str(volume) for volume in redis["volumes"]
    )
    assert "redis-cli" in redis["healthcheck"]["test"]
    assert "build" in api
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert api["environment"]["DYNACACHE_REDIS_URL"] == "redis://redis:6379/0"
    # --scale api=N needs replicas without fixed names or host ports
    assert "container_name" not in api and "ports" not in api
    assert lb["image"].startswith("nginx")
    # published on loopback only by default (LB_BIND widens it)
    assert lb["ports"] == ["127.0.0.1:8000:80/tcp"], lb["ports"]
    assert lb["depends_on"]["api"]["condition"] == "service_healthy"


def test_compose_default_starts_open_by_choice_or_with_keys() -> None:
    """The replicas bind 0.0.0.0, which the service refuses to serve open unless told: the
    documented default says so (open), and an admin token from the environment turns keys
    on. Both must be settings the service accepts (it refused to start in both ways once)."""
    api = compose_config()["services"]["api"]["environment"]
    assert api["DYNACACHE_HOST"] == "0.0.0.0"
    default = Settings(**_settings_from(api))
    assert default.admin_token is None and default.allow_open
    assert refusal(default) is None

    with_keys = compose_config({"DYNACACHE_ADMIN_TOKEN": "s3cret"})["services"]["api"]
    keyed = Settings(**_settings_from(with_keys["environment"]))
    assert keyed.admin_token is not None
    assert keyed.admin_token.get_secret_value() == "s3cret"
    assert refusal(keyed) is None
    # and without the compose file's choice, an open 0.0.0.0 is still refused
    assert refusal(Settings(host="0.0.0.0", allow_open=False)) is not None


def _settings_from(environment: dict[str, str]) -> dict[str, str]:
    return {
        name.removeprefix("DYNACACHE_").lower(): value
        for name, value in environment.items()
        if name.startswith("DYNACACHE_") and name != "DYNACACHE_REDIS_URL"
    }


def test_dockerfile_serves_the_shipped_models_without_torch() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    text = "\n".join(line for line in lines if not line.startswith("#"))
    assert [line for line in lines if line.startswith("FROM")] == ["FROM ${BASE_IMAGE}"]
    # no torch, no export, no training: the models ship (models/ -> index/shipped)
    assert "torch" not in text and "[train]" not in text and "onnx_export" not in text
    assert "COPY models ./models" in text and "pip install ." in text
    # the runtime packages only: no offline code, no harnesses
    copied = [line.split()[1] for line in lines if line.startswith("COPY ")]
    assert not {"training", "devtools", "tests", "bench", "."} & set(copied), copied
    assert "useradd" in text
    user_lines = [line for line in lines if line.startswith("USER ")]
    assert user_lines and user_lines[-1] != "USER root"
    assert "HEALTHCHECK" in text and "/readyz" in text


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
def test_nginx_config_passes_nginx_t() -> None:
    balancer = NginxLB([18001, 18002, 18003])
    try:
        result = balancer.test_config()
        assert result.returncode == 0, result.stderr
        assert "test is successful" in result.stderr
    finally:
        balancer.stop()


def test_the_affine_override_turns_affinity_on_behind_a_hashing_balancer() -> None:
    services = compose_config(None, "deploy/compose/affine.yml")["services"]
    assert services["api"]["environment"]["DYNACACHE_NAMESPACE_AFFINITY"] == "1"
    mounts = [str(volume) for volume in services["lb"]["volumes"]]
    assert len(mounts) == 1 and "nginx-affine.conf" in mounts[0]
    upstream = (ROOT / "deploy/compose/nginx-affine.conf").read_text()
    assert "hash $http_authorization$http_x_api_key consistent;" in upstream


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
def test_the_affine_nginx_config_passes_nginx_t() -> None:
    balancer = NginxLB([18001, 18002], ROOT / "deploy/compose/nginx-affine.conf")
    try:
        result = balancer.test_config()
        assert result.returncode == 0, result.stderr
    finally:
        balancer.stop()


def test_nginx_conf_is_what_compose_mounts() -> None:
    lb = compose_config()["services"]["lb"]
    assert any(Path(str(volume).split(":")[0]).name == "nginx.conf" for volume in lb["volumes"])
