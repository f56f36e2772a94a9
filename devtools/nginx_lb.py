"""The project's nginx.conf, run for real on 127.0.0.1 in front of given replica ports."""

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from devtools.replica_process import ROOT
from service.embedded_redis import free_port


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def local_config(
    upstream_ports: Sequence[int], listen_port: int, config_file: Path = ROOT / "nginx.conf"
) -> str:
    """An nginx config of the project with the compose addresses swapped for loopback ones;
    nothing else changes."""
    config = config_file.read_text()
    servers = "\n".join(
        f"        server 127.0.0.1:{port} max_fails=3 fail_timeout=5s;" for port in upstream_ports
    )
    config, swapped = re.subn(r"^\s*server api:8000[^;]*;", servers, config, flags=re.M)
    assert swapped == 1, "nginx.conf no longer names the api upstream as expected"
    config, swapped = re.subn(r"listen 80;", f"listen 127.0.0.1:{listen_port};", config)
    assert swapped == 1
    return config


class NginxLB:
    def __init__(
        self, upstream_ports: Sequence[int], config_file: Path = ROOT / "nginx.conf"
    ) -> None:
        binary = nginx_binary()
        assert binary, "nginx is not installed (make test installs Debian's nginx-light)"
        self.binary = binary
        self.port = free_port()
        self._folder = tempfile.TemporaryDirectory(prefix="dc-nginx-")
        self.config_path = Path(self._folder.name) / "nginx.conf"
        config = local_config(upstream_ports, self.port, config_file)
        config = config.replace("pid /tmp/nginx.pid;", f"pid {self._folder.name}/nginx.pid;")
        self.config_path.write_text(config)
        self.process: subprocess.Popen[bytes] | None = None

    def test_config(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "-t", "-c", str(self.config_path), "-p", self._folder.name],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    def start(self) -> "NginxLB":
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path), "-p", self._folder.name,
             "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self._folder.cleanup()
