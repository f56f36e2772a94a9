"""docker-compose.yml, Dockerfile and nginx.conf: checked with the real tools available here
(no Docker engine runs on this machine; Debian's docker-compose validates the file)."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.nginx_lb import NginxLB, nginx_binary
from tests.processes import ROOT


def compose_config() -> dict[str, Any]:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (make test installs Debian's package)")
    result = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


def test_compose_file_is_valid_and_scalable() -> None:
    services = compose_config()["services"]
    assert set(services) == {"redis", "api", "lb"}
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
    assert any(port["published"] == 8000 and port["target"] == 80 for port in lb["ports"])
    assert lb["depends_on"]["api"]["condition"] == "service_healthy"


def test_dockerfile_shape() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert next(line for line in lines if line.startswith("FROM")) == "FROM python:3.12-slim"
    text = "\n".join(lines)
    assert "torch==2.13.0" in text and "whl/cpu" in text
    assert "useradd" in text
    user_lines = [line for line in lines if line.startswith("USER ")]
    assert user_lines and user_lines[-1] != "USER root"
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert text.index("torch==2.13.0") < text.index("pip install .")


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
def test_nginx_config_passes_nginx_t() -> None:
    balancer = NginxLB([18001, 18002, 18003])
    try:
        result = balancer.test_config()
        assert result.returncode == 0, result.stderr
        assert "test is successful" in result.stderr
    finally:
        balancer.stop()


def test_nginx_conf_is_what_compose_mounts() -> None:
    lb = compose_config()["services"]["lb"]
    assert any(Path(str(volume).split(":")[0]).name == "nginx.conf" for volume in lb["volumes"])
