"""One data folder, one embedded Redis (issue 37).

Before: two processes given one ``redis_data_dir`` each started a ``redis-server`` on the
same AOF, and a library cache closed beside a running service deleted the service's
``url`` file, so the CLI no longer found its Redis. Now the folder is locked by the process
that runs its server (and by the server): a second process joins that server, never
removes a ``url`` file it did not write, and starts the server itself, on the same port,
once the first process let the folder go.
"""

from pathlib import Path

import pytest

from devtools.replica_process import ServiceProcess
from dyna_cache import SemanticCache
from service.embedded_redis import EmbeddedRedis, answers
from service.redis_folder import FolderInUse, published_url
from tests.conftest import make_settings
from tests.helpers import wait_until


def servers_on(folder: Path) -> list[int]:
    """The pids of the redis-server processes working in ``folder`` (``--dir``: Redis
    changes into its data folder, and rewrites its command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (entry / "comm").read_text().strip() == "redis-server" and (
                entry / "cwd"
            ).resolve() == folder.resolve():
                found.append(int(entry.name))
        except OSError:  # not a process, gone meanwhile, or not ours to read
            continue
    return found


def test_a_second_server_on_a_folder_is_refused_and_a_joiner_leaves_the_url_file(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "redis"
    first = EmbeddedRedis(folder, appendonly=False).start()
    try:
        assert published_url(folder) == first.url
        with pytest.raises(FolderInUse, match="one folder has one server"):
            EmbeddedRedis(folder, appendonly=False).start()
        joined = EmbeddedRedis(folder, appendonly=False).start_or_join()
        assert joined.joined and joined.url == first.url and joined.pid is None
        assert servers_on(folder) == [first.pid]
        assert not joined.needs_start()  # the first process still runs it
        joined.stop()
        # nobody removes a url file it did not write; the server it joined runs on
        assert published_url(folder) == first.url and answers(first.port)
        again = EmbeddedRedis(folder, appendonly=False).start_or_join()
    finally:
        first.stop()
    assert published_url(folder) is None  # its writer removed it
    # the first let the folder go: the one that joined is to start the server, on its port
    assert again.needs_start()
    again.start()
    try:
        assert again.url == first.url and published_url(folder) == first.url
    finally:
        again.stop()


async def test_a_library_cache_beside_a_service_joins_its_redis_and_leaves_its_url(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "redis"
    with ServiceProcess(redis_data_dir=str(folder), sim_latency_ms=0) as service:
        url = published_url(folder)
        assert url == service.view()["embedded_redis"]["url"]
        settings = make_settings("unused", redis_data_dir=folder)
        async with SemanticCache(settings.model_copy(update={"redis_url": None})) as cache:
            entry_id = await cache.store("What is the capital of Peru?", "Lima.")
            assert servers_on(folder) == [service.view()["embedded_redis"]["pid"]]
        # the library wrote into the service's Redis, and its close took nothing away
        served = service.query("What is the capital of Peru?").json()
        assert (served["status"], served["entry_id"]) == ("HIT", entry_id)
        assert published_url(folder) == url


def test_a_second_service_joins_the_first_ones_redis_and_takes_it_over_when_it_stops(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "redis"
    first = ServiceProcess(redis_data_dir=str(folder), sim_latency_ms=0).__enter__()
    running = [first]
    try:
        second = ServiceProcess(redis_data_dir=str(folder), sim_latency_ms=0).__enter__()
        running.append(second)
        own, joined = first.view()["embedded_redis"], second.view()["embedded_redis"]
        assert joined["joined"] and joined["url"] == own["url"] and joined["pid"] is None
        assert servers_on(folder) == [own["pid"]]
        stored = first.query("How many legs does a spider have?").json()
        assert stored["status"] == "MISS"
        served = second.query("How many legs does a spider have?").json()
        assert (served["status"], served["entry_id"]) == ("HIT", stored["entry_id"])

        running.remove(first)
        first.stop()
        wait_until(
            lambda: second.view()["embedded_redis"]["restarts"] == 1, 30,
            message="the second service started the folder's Redis once the first stopped",
        )  # fmt: skip
        took_over = second.view()["embedded_redis"]
        assert not took_over["joined"] and took_over["url"] == own["url"]
        assert servers_on(folder) == [took_over["pid"]]
        assert published_url(folder) == own["url"]
        wait_until(lambda: second.http.get("/readyz").status_code == 200, 30, message="ready")
        # the AOF kept the entry
        again = second.query("How many legs does a spider have?").json()
        assert (again["status"], again["entry_id"]) == ("HIT", stored["entry_id"])
    finally:
        for service in running:
            service.stop()
