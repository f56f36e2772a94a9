"""`python -m service` (what `make run` starts): embedded Redis with AOF, clean Ctrl-C."""

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from service.embedded_redis import free_port
from tests.helpers import wait_until


def redis_processes_using(data_dir: Path) -> list[int]:
    """redis-server rewrites its title, but it runs in its --dir: find it by working dir."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if name.startswith("redis-server") and cwd == str(data_dir.resolve()):
            pids.append(int(entry.name))
    return pids


def loaded_libraries(pid: int, names: tuple[str, ...]) -> set[str]:
    """Files a running process has mapped whose path names one of ``names``."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    paths = {line.split()[-1] for line in maps if "/" in line}
    return {path for path in paths if any(f"/{name}" in path for name in names)}


class RunCommand:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "DYNACACHE_PORT": str(self.port),
            "DYNACACHE_SIM_LATENCY_MS": "0",
            "DYNACACHE_REDIS_DATA_DIR": str(data_dir),
            "HF_HUB_OFFLINE": "1",
        }
        env.pop("DYNACACHE_REDIS_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a job of its own, as a shell starts it
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, self.process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            try:
                return self.http.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, 120, interval_s=0.2, message="python -m service ready")

    def interrupt(self) -> int:
        """Ctrl-C as a terminal sends it: to the whole foreground job (its process group)."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=30)

    def log(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read().decode()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "redis"
    for pid in redis_processes_using(tmp_path / "redis"):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def run_command(data_dir: Path) -> Iterator[Callable[[], RunCommand]]:
    """Start `python -m service`; whatever a failing test leaves running is killed."""
    started: list[RunCommand] = []

    def start() -> RunCommand:
        started.append(RunCommand(data_dir))
        return started[-1]

    yield start
    for run in started:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def test_run_serves_survives_restart_and_stops_cleanly_on_ctrl_c(
    data_dir: Path, run_command: Callable[[], RunCommand]
) -> None:
    first = run_command()
    first.wait_ready()
    assert first.http.get("/docs").status_code == 200
    asked = first.http.post("/v1/query", json={"prompt": "What is the capital of France?"})
    assert asked.json()["status"] == "MISS"
    # serving (the default ONNX embedder) loads neither torch nor scikit-learn: the image's
    # runtime stage has neither, and the [train] extra is not needed to serve
    assert not loaded_libraries(first.process.pid, ("torch", "sklearn", "scikit_learn"))
    assert loaded_libraries(first.process.pid, ("onnxruntime",))
    assert redis_processes_using(data_dir)
    assert first.interrupt() == 0
    wait_until(lambda: not redis_processes_using(data_dir), 10, message="embedded Redis gone")
    assert (data_dir / "appendonlydir").is_dir()
    # a clean Ctrl-C says nothing alarming: Redis no longer goes first (it has a group of
    # its own), so the replica does not see its event feed lost while it stops
    logged = first.log()
    assert "Shutting down" in logged
    stopped = logged.split("Shutting down", 1)[-1]
    assert "event feed lost" not in stopped and "Traceback" not in stopped
    assert "WARNING" not in stopped and "ERROR" not in stopped, stopped[-2000:]

    second = run_command()
    second.wait_ready()
    hit = second.http.post("/v1/query", json={"prompt": "Tell me the capital of France"}).json()
    assert hit["status"] == "HIT"
    assert second.interrupt() == 0
    wait_until(lambda: not redis_processes_using(data_dir), 10, message="embedded Redis gone")


def test_a_killed_service_takes_its_redis_with_it(
    data_dir: Path, run_command: Callable[[], RunCommand]
) -> None:
    run = run_command()
    run.wait_ready()
    run.process.kill()
    run.process.wait()
    wait_until(lambda: not redis_processes_using(data_dir), 10, message="orphan Redis gone")


def test_no_bench_script_shadows_a_standard_library_module() -> None:
    """``python bench/x.py`` puts bench/ first on sys.path: a ``bench/profile.py`` made
    ``import cProfile`` (torch imports it) load it instead, and the torch and RedisVL
    benchmarks failed on import."""
    bench = Path(__file__).resolve().parents[1] / "bench"
    shadowing = sorted(
        script.name for script in bench.glob("*.py") if script.stem in sys.stdlib_module_names
    )
    assert shadowing == []
