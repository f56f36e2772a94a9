"""The real deployment: the images built from the Dockerfile, the compose stack with three
api replicas behind the load balancer, run by podman (no Docker engine runs here).

``make image-test`` builds the images (deploy/podman/build_images.sh: local base images from
debootstrap, no registry) and runs this file; the default suite leaves it out, since an
uncached build takes minutes. Where podman or docker-compose is missing, or the images were
not built, the test says skipped and why.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from devtools.compose_stack import LOCAL_IMAGES, PODMAN_CONF, podman_stack
from service.version import __version__
from tests.helpers import wait_until

pytestmark = pytest.mark.image

IMAGES = LOCAL_IMAGES
PROJECT = "dctest"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env={**os.environ, "CONTAINERS_CONF": str(PODMAN_CONF)},
        capture_output=True, text=True, check=check,
    )  # fmt: skip


def _require_tools_and_images() -> None:
    for tool in ("podman", "docker-compose"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make image-test installs it)")
    if _podman("info", check=False).returncode != 0:
        pytest.skip("podman cannot run containers here")
    for image in IMAGES.values():
        if _podman("image", "exists", image, check=False).returncode != 0:
            pytest.skip(
                f"{image} is not built: run deploy/podman/build_images.sh (make image-test)"
            )


def test_runtime_image_holds_only_the_runtime_and_carries_the_model() -> None:
    _require_tools_and_images()
    probe = _podman(
        "run", "--rm", IMAGES["DYNACACHE_API_IMAGE"], "python", "-c",
        "import importlib.util as u, pathlib; "
        "print(u.find_spec('torch') is None, u.find_spec('sklearn') is None, "
        "u.find_spec('training') is None, u.find_spec('devtools') is None, "
        "not pathlib.Path('training').exists(), not pathlib.Path('devtools').exists()); "
        "from index.model_paths import shipped_models as s; "
        "print(all((s() / f).exists() for f in ('embedder/weights.npz', "
        "'pair/weights.npz', 'pair/pair_model.json')))",
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
    tmp_path: Path, files: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_tools_and_images()
    port = _free_port()
    monkeypatch.delenv("DYNACACHE_ADMIN_TOKEN", raising=False)  # the default: open, by choice
    # the recipe of `make up` on podman (devtools/compose_stack.py): API socket, compose,
    # health checks run by the tool; torn down whatever happens
    with podman_stack(tmp_path / "state", PROJECT, files, port, replicas=3):
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            return False

        wait_until(
            ready, timeout_s=240, interval_s=1.0, message="the load balancer to answer ready"
        )
        with httpx.Client(base_url=base, timeout=30) as client:
            # the shipped judge decides on the replicas, with no training in the image
            for _ in range(6):
                decision = client.get("/readyz").json()["decision"]
                assert decision["stage"] == "pair-model" and decision["version"], decision
            first = client.post("/v1/query", json={"prompt": "What is the capital of France?"})
            assert first.status_code == 200, first.text
            assert first.json()["status"] == "MISS"
            replicas: set[str] = set()
            statuses: list[str] = []
            deadline = time.monotonic() + 60
            # a paraphrase the default judge (the pair model in the image) serves: the test is
            # of the stack, not of the judge ("Tell me France's capital city" it refuses)
            while len(replicas) < 2 and time.monotonic() < deadline:
                hit = client.post("/v1/query", json={"prompt": "Tell me the capital of France"})
                assert hit.status_code == 200, hit.text
                statuses.append(hit.json()["status"])
                if hit.json()["status"] == "HIT":
                    replicas.add(hit.headers["x-replica"])
        assert len(replicas) >= 2, (replicas, statuses)
        assert set(statuses) == {"HIT"}, statuses
    left = _podman("ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}",
                   "--format", "{{.ID}}")  # fmt: skip
    assert left.stdout.split() == []
