"""``make up`` / ``make down``: the compose stack (Redis, N replicas, nginx on 127.0.0.1) with
Docker Compose v2 where a Docker engine runs, else with podman, and says which it used.

With podman and no Docker engine, ``docker compose`` has no compose plugin, ``docker-compose``
finds no engine, base images cannot be pulled without a registry, and podman runs no health
checks without systemd (the stack waits on Redis "(starting)" for ever). So the podman path
builds the images locally (``deploy/podman/build_images.sh``: debootstrap and ``podman
import`` for the base images, minutes the first time; the api image from its layer cache),
serves podman's Docker API on a socket of its own (``podman system service``), runs
``docker-compose`` 1.29 against it with those images, and runs the containers' health
checks itself in a background process. Its state (socket, pids) is kept in ``.compose/``
until ``make down``. Standard library only: it needs no virtual environment.

    python -m devtools.compose_stack up [--replicas 3] [--port 8000] [--file EXTRA.yml]
    python -m devtools.compose_stack down
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PODMAN_DIR = ROOT / "deploy" / "podman"
PODMAN_CONF = PODMAN_DIR / "containers.conf"
LOCAL_IMAGES = {
    "DYNACACHE_API_IMAGE": "localhost/dyna-cache:test",
    "DYNACACHE_REDIS_IMAGE": "localhost/dyna-redis:local",
    "DYNACACHE_LB_IMAGE": "localhost/dyna-nginx:local",
}
PROJECT = "dyna-cache"
STATE = ROOT / ".compose"


class StackError(RuntimeError):
    """A stack that cannot be started here; the message is the one line to show."""


def _runs(*command: str, env: dict[str, str] | None = None) -> bool:
    if shutil.which(command[0]) is None:
        return False
    done = subprocess.run(command, capture_output=True, env=env, check=False, timeout=60)
    return done.returncode == 0


def _podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(PODMAN_CONF)}


def engine() -> str:
    """``docker`` (Compose v2 and a running engine), ``podman``, or a StackError."""
    if _runs("docker", "compose", "version") and _runs("docker", "info"):
        return "docker"
    if shutil.which("podman") is not None:
        if shutil.which("docker-compose") is None:
            raise StackError("podman is here but docker-compose is not: apt install docker-compose")
        if not _runs("podman", "info", env=_podman_env()):
            raise StackError("podman cannot run containers here (`podman info` fails)")
        return "podman"
    if shutil.which("docker") is not None:
        raise StackError(
            "docker is here but not Compose v2 with a running engine (`docker compose version`, "
            "`docker info`), and podman is not installed"
        )
    raise StackError("neither Docker (Compose v2) nor podman is installed")


def wait_ready(port: int, timeout_s: float = 300.0) -> None:
    """Until the balancer answers ``/readyz`` 200 (a replica is ready behind it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        url = f"http://127.0.0.1:{port}/readyz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(1.0)
    raise StackError(f"the stack did not answer ready on 127.0.0.1:{port} in {timeout_s:.0f} s")


class PodmanStack:
    """The compose stack under podman: its API socket, the health checks, docker-compose."""

    def __init__(
        self, state: Path, project: str = PROJECT, files: Sequence[str] = (), port: int = 8000
    ) -> None:
        self.state, self.project, self.files, self.port = state, project, tuple(files), port
        self.socket = state / "podman.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def compose(self, *args: str) -> subprocess.CompletedProcess[str]:
        chosen = [
            a for name in ("docker-compose.yml", *self.files) for a in ("-f", str(ROOT / name))
        ]
        env = {**os.environ, **LOCAL_IMAGES, "LB_PORT": str(self.port), "DOCKER_HOST": self.host}
        return subprocess.run(
            ["docker-compose", "-p", self.project, *chosen, *args], env=env, cwd=ROOT,
            capture_output=True, text=True, check=False, timeout=900,
        )  # fmt: skip

    def build_images(self) -> None:
        """The images, built locally (the base images once, minutes; the api image again
        each time, from its layer cache: the stack runs this checkout's code)."""
        missing = [image for image in LOCAL_IMAGES.values()
                   if not _runs("podman", "image", "exists", image, env=_podman_env())]  # fmt: skip
        first = f" ({', '.join(missing)} missing: minutes the first time)" if missing else ""
        print(f"building the images with podman{first}", flush=True)
        built = subprocess.run(["bash", str(PODMAN_DIR / "build_images.sh")], check=False)
        if built.returncode != 0:
            raise StackError("building the images failed (deploy/podman/build_images.sh)")

    def start(self, replicas: int) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self._spawn("podman", ["podman", "system", "service", "--time=0", self.host])
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if time.monotonic() > deadline:
                raise StackError("podman's API socket did not appear (podman system service)")
            time.sleep(0.1)
        # podman runs no health checks without systemd: this loop does, so that the
        # services waiting on a healthy Redis (and replicas) start
        self._spawn("healthchecks", [sys.executable, "-m", "devtools.compose_stack",
                                     "healthchecks", "--project", self.project])  # fmt: skip
        up = self.compose("up", "-d", "--no-build", "--scale", f"api={replicas}")
        if up.returncode != 0:
            raise StackError(f"docker-compose up failed: {up.stderr.strip().splitlines()[-1:]}")

    def stop(self) -> None:
        if self.socket.exists():
            self.compose("down", "--volumes", "--remove-orphans", "-t", "5")
        for name in ("healthchecks", "podman"):
            pid_file = self.state / f"{name}.pid"
            if pid_file.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.killpg(int(pid_file.read_text()), signal.SIGTERM)
                pid_file.unlink()
        self.socket.unlink(missing_ok=True)

    def _spawn(self, name: str, command: list[str]) -> None:
        process = subprocess.Popen(
            command, env=_podman_env(), cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        (self.state / f"{name}.pid").write_text(str(process.pid))


@contextlib.contextmanager
def podman_stack(
    state: Path, project: str, files: Sequence[str], port: int, replicas: int = 3
) -> Iterator[PodmanStack]:
    """The stack up for the block (the image test), down after it whatever happened."""
    stack = PodmanStack(state, project, files, port)
    try:
        stack.start(replicas)
        yield stack
    finally:
        stack.stop()


def run_healthchecks(project: str) -> None:
    """Run each container's HEALTHCHECK every 2 s (until killed)."""
    env = _podman_env()
    while True:
        listed = subprocess.run(
            ["podman", "ps", "--filter", f"label=com.docker.compose.project={project}",
             "--format", "{{.ID}}"], env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        for container in listed.stdout.split():
            subprocess.run(["podman", "healthcheck", "run", container], env=env,
                           capture_output=True, check=False)  # fmt: skip
        time.sleep(2.0)


def up(replicas: int, port: int, files: Sequence[str]) -> str:
    """Start the stack; which engine it used."""
    used = engine()
    if used == "docker":
        chosen = [a for name in ("docker-compose.yml", *files) for a in ("-f", name)]
        started = subprocess.run(
            ["docker", "compose", "-p", PROJECT, *chosen, "up", "-d", "--build", "--scale",
             f"api={replicas}"], cwd=ROOT, env={**os.environ, "LB_PORT": str(port)}, check=False,
        )  # fmt: skip
        if started.returncode != 0:
            raise StackError("docker compose up failed (see above)")
    else:
        stack = PodmanStack(STATE, PROJECT, files, port)
        stack.build_images()
        try:
            stack.start(replicas)
        except StackError:
            stack.stop()
            raise
    STATE.mkdir(exist_ok=True)
    (STATE / "stack.json").write_text(json.dumps({"engine": used, "files": list(files),
                                                  "port": port}))  # fmt: skip
    wait_ready(port)
    return used


def down() -> str | None:
    """Stop the stack ``up`` started; the engine it ran on (None: none was running)."""
    saved = STATE / "stack.json"
    if not saved.exists():
        return None
    stack = json.loads(saved.read_text())
    if stack["engine"] == "docker":
        chosen = [a for name in ("docker-compose.yml", *stack["files"]) for a in ("-f", name)]
        subprocess.run(["docker", "compose", "-p", PROJECT, *chosen, "down"], cwd=ROOT,
                       check=False)  # fmt: skip
    else:
        PodmanStack(STATE, PROJECT, stack["files"], stack["port"]).stop()
    saved.unlink()
    return str(stack["engine"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.compose_stack")
    commands = parser.add_subparsers(dest="command", required=True)
    started = commands.add_parser("up", help="start the stack")
    started.add_argument("--replicas", type=int, default=3)
    started.add_argument("--port", type=int, default=int(os.environ.get("LB_PORT") or 8000))
    started.add_argument("--file", action="append", default=[], help="another compose file")
    commands.add_parser("down", help="stop it")
    checks = commands.add_parser("healthchecks", help="(internal) run the health checks")
    checks.add_argument("--project", default=PROJECT)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            used = up(args.replicas, args.port, args.file)
            how = "Docker Compose v2" if used == "docker" else "podman (docker-compose 1.29 " \
                "against podman's API socket, health checks run by this tool)"  # fmt: skip
            print(f"up with {how}: {args.replicas} replicas behind nginx at "
                  f"http://127.0.0.1:{args.port} (make down stops it)")  # fmt: skip
        elif args.command == "down":
            stopped = down()
            print(f"down ({stopped})" if stopped else "no stack started by make up is running")
            if stopped == "podman":
                print("the images stay for the next make up (about 1 GB: localhost/dyna-cache:test,"
                      " dyna-redis, dyna-nginx, dyna-python, dyna-base); remove them with "
                      "`podman rmi localhost/dyna-cache:test localhost/dyna-redis:local "
                      "localhost/dyna-nginx:local localhost/dyna-python:3.11 "
                      "localhost/dyna-base:bookworm`")  # fmt: skip
        else:
            run_healthchecks(args.project)
    except StackError as error:
        print(f"make {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
