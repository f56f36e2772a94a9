"""The real deployment: the images built from the Dockerfile, the compose stack with three
api replicas behind the load balancer, run by podman (no Docker engine runs here).

``make image-test`` builds the images (tests/podman/build_images.sh: local base images from
debootstrap, no registry) and runs this file; the default suite leaves it out, since an
uncached build takes minutes. Where podman or docker-compose is missing, or the images were
not built, the test says skipped and why.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.replica_process import ROOT
from service.version import __version__
from tests.helpers import wait_until

pytestmark = pytest.mark.image

PODMAN_CONF = ROOT / "tests" / "podman" / "containers.conf"
IMAGES = {
    "DYNACACHE_API_IMAGE": "localhost/dyna-cache:test",
    "DYNACACHE_REDIS_IMAGE": "localhost/dyna-redis:local",
    "DYNACACHE_LB_IMAGE": "localhost/dyna-nginx:local",
}
PROJECT = "dctest"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(PODMAN_CONF)}


def _podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=_podman_env(), capture_output=True, text=True, check=check
    )


@contextlib.contextmanager
def _podman_service(tmp: Path) -> Iterator[str]:
    """``podman system service`` on a socket of our own: docker-compose talks to it."""
    sock = tmp / "podman.sock"
    process = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        env=_podman_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(sock.exists, timeout_s=30, interval_s=0.1, message="podman API socket")
        yield f"unix://{sock}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def _healthchecks() -> Iterator[None]:
    """Run the containers' HEALTHCHECKs: podman's own timers need systemd, absent here."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(2.0):
            listed = _podman("ps", "--filter", f"label=com.docker.compose.project={PROJECT}",
                             "--format", "{{.ID}}", check=False)  # fmt: skip
            for container in listed.stdout.split():
                _podman("healthcheck", "run", container, check=False)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def _compose(
    host: str, env: dict[str, str], *args: str, files: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    chosen = [arg for name in ("docker-compose.yml", *files) for arg in ("-f", str(ROOT / name))]
    return subprocess.run(
        ["docker-compose", "-p", PROJECT, *chosen, *args],
        env={**env, "DOCKER_HOST": host},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def _require_tools_and_images() -> None:
    for tool in ("podman", "docker-compose"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make image-test installs it)")
    if _podman("info", check=False).returncode != 0:
        pytest.skip("podman cannot run containers here")
    for image in IMAGES.values():
        if _podman("image", "exists", image, check=False).returncode != 0:
            pytest.skip(f"{image} is not built: run tests/podman/build_images.sh (make image-test)")


def test_runtime_image_holds_only_the_runtime_and_carries_the_model() -> None:
    _require_tools_and_images()
    probe = _podman(
        "run", "--rm", IMAGES["DYNACACHE_API_IMAGE"], "python", "-c",
        "import importlib.util as u, pathlib; "
        "print(u.find_spec('torch') is None, u.find_spec('sklearn') is None, "
        "u.find_spec('training') is None, u.find_spec('devtools') is None, "
        "not pathlib.Path('training').exists(), not pathlib.Path('devtools').exists(), "
        "pathlib.Path('models/onnx/model.onnx').exists())",
    )  # fmt: skip
    assert probe.stdout.split() == ["True"] * 7
    label = _podman("image", "inspect", "--format",
                    '{{ index .Labels "org.opencontainers.image.version" }}',
                    IMAGES["DYNACACHE_API_IMAGE"])  # fmt: skip
    assert label.stdout.strip() == __version__  # the one source of the version


@pytest.mark.parametrize(
    "files",
    [(), ("deploy/compose/redis-cluster.yml",)],
    ids=["one-redis", "redis-cluster"],
)
def test_compose_stack_serves_paraphrase_hits_from_several_replicas(
    tmp_path: Path, files: tuple[str, ...]
) -> None:
    _require_tools_and_images()
    port = _free_port()
    env = {**os.environ, **IMAGES, "LB_PORT": str(port)}
    env.pop("DYNACACHE_ADMIN_TOKEN", None)  # the documented default: open, by choice
    with _podman_service(tmp_path) as host, _healthchecks():
        try:
            up = _compose(host, env, "up", "-d", "--no-build", "--scale", "api=3", files=files)
            assert up.returncode == 0, up.stderr[-3000:]
            base = f"http://127.0.0.1:{port}"

            def ready() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
                return False

            wait_until(
                ready, timeout_s=240, interval_s=1.0, message="the load balancer to answer ready"
            )
            with httpx.Client(base_url=base, timeout=30) as client:
                first = client.post("/v1/query", json={"prompt": "What is the capital of France?"})
                assert first.status_code == 200, first.text
                assert first.json()["status"] == "MISS"
                replicas: set[str] = set()
                statuses: list[str] = []
                deadline = time.monotonic() + 60
                while len(replicas) < 2 and time.monotonic() < deadline:
                    hit = client.post("/v1/query", json={"prompt": "Tell me France's capital city"})
                    assert hit.status_code == 200, hit.text
                    statuses.append(hit.json()["status"])
                    if hit.json()["status"] == "HIT":
                        replicas.add(hit.headers["x-replica"])
            assert len(replicas) >= 2, (replicas, statuses)
            assert set(statuses) == {"HIT"}, statuses
        finally:
            down = _compose(
                host, env, "down", "--volumes", "--remove-orphans", "-t", "5", files=files
            )
            assert down.returncode == 0, down.stderr[-3000:]
    left = _podman("ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}",
                   "--format", "{{.ID}}")  # fmt: skip
    assert left.stdout.split() == []
