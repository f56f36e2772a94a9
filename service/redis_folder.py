"""One data folder, one embedded Redis: the folder's lock and its ``url`` file.

The process that runs a folder's ``redis-server`` holds an exclusive lock on
``<folder>/lock`` (``flock``), and so does the server itself, which inherits the locked
file: while either lives, no second server starts on the folder's AOF (two did, and both
appended to it). The holder writes where its server listens to ``<folder>/url`` (it listens
on a free port: the CLI, and another process given the same folder, read it there) and
removes that file when it lets the folder go; no other process writes or removes it.
"""

import contextlib
import fcntl
import os
from pathlib import Path
from urllib.parse import urlsplit

LOCK_FILE = "lock"
URL_FILE = "url"


class FolderInUse(RuntimeError):
    """Another process runs this folder's Redis."""

    def __init__(self, folder: Path, holder: str) -> None:
        super().__init__(
            f"{folder} is the data folder of a Redis another process runs (pid {holder}); "
            f"one folder has one server"
        )
        self.folder = folder


class FolderLock:
    """The lock of one data folder, and the ``url`` file of the server that holds it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fd: int | None = None
        self._published: str | None = None  # the URL this process wrote

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def fd(self) -> int:
        """The locked file's descriptor (a child that inherits it holds the lock too)."""
        if self._fd is None:
            raise RuntimeError(f"the lock of {self.folder} is not held")
        return self._fd

    def try_acquire(self) -> bool:
        """Take the folder (True), or find it held by another process (False)."""
        if self._fd is not None:
            return True
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for the message of the next one
        self._fd = fd
        return True

    def acquire(self) -> None:
        if not self.try_acquire():
            raise FolderInUse(self.folder, self.holder())

    def holder(self) -> str:
        """The pid of the process that took the folder, as it wrote it (for messages)."""
        with contextlib.suppress(OSError):
            return (self.folder / LOCK_FILE).read_text(encoding="utf-8").strip() or "unknown"
        return "unknown"

    def publish(self, url: str) -> None:
        """Write where the folder's server listens (only the lock's holder does)."""
        if not self.held:
            raise RuntimeError(f"the lock of {self.folder} is not held")
        staged = self.folder / f"{URL_FILE}.{os.getpid()}"
        staged.write_text(url + "\n", encoding="utf-8")
        staged.replace(self.folder / URL_FILE)  # a reader sees the old URL or the new one
        self._published = url

    def release(self) -> None:
        """Remove the ``url`` file this process wrote (only that one), then let go."""
        if self._published is not None and published_url(self.folder) == self._published:
            (self.folder / URL_FILE).unlink(missing_ok=True)
        self._published = None
        if self._fd is not None:
            os.close(self._fd)  # the lock goes with the last descriptor of the locked file
            self._fd = None


def published_url(folder: Path) -> str | None:
    """The URL the holder of ``folder`` wrote (None: none written)."""
    try:
        return (folder / URL_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def port_of(url: str) -> int:
    """The port of a URL written to a ``url`` file."""
    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"{url!r} names no port")
    return port
