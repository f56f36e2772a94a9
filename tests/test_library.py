"""The cache in process (``dyna_cache``): the same cache as the HTTP service, on a real Redis,
and entries that cross between the library and HTTP replicas in their own processes."""

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis

from devtools.redis_cluster import EmbeddedCluster
from devtools.replica_process import ServiceProcess
from dyna_cache import (
    Hit,
    InvalidInput,
    Miss,
    NotFound,
    NotStarted,
    RedisUnreachable,
    SemanticCache,
    SyncSemanticCache,
)
from index.store import keys
from service.embedded_redis import EmbeddedRedis, free_port
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[1]
Server = EmbeddedRedis | EmbeddedCluster
# every test asks for redis_client too: it empties the session's Redis first (a cache
# opened on what earlier tests left, a grown HNSW index among it, loads all of that)


async def test_check_answer_store_delete_clear_and_stats(
    redis_server: Server, redis_client: redis.Redis
) -> None:
    asked: list[str] = []

    async def llm(question: str) -> str:
        asked.append(question)
        return "Paris."

    async with SemanticCache(make_settings(redis_server.url)) as cache:
        assert isinstance(await cache.check("What is the capital of France?"), Miss)
        answered = await cache.answer("What is the capital of France?", llm)
        assert isinstance(answered, Miss) and answered.response == "Paris."
        assert answered.entry_id is not None and asked == ["What is the capital of France?"]
        hit = await cache.check("Tell me the capital of France")
        assert isinstance(hit, Hit) and hit.response == "Paris." and not hit.exact
        assert hit.entry_id == answered.entry_id and 0 < hit.distance < 0.35
        assert hit.prompt == "What is the capital of France?"
        assert hit.similarity == pytest.approx(1 - hit.distance / 2)
        again = await cache.answer("What is the capital of France?", llm)
        assert isinstance(again, Hit) and again.exact and len(asked) == 1
        # the model joins the scope: another model's entries never serve
        assert isinstance(await cache.check("Tell me the capital of France", model="m2"), Miss)
        entry_id = await cache.store("How tall is Everest?", "8,849 m", ttl=60)
        assert 0 < redis_client.ttl(keys.entry_key("default", entry_id)) <= 60
        assert (await cache.check("What is the height of Mount Everest?")).response == "8,849 m"
        await cache.delete(entry_id)
        with pytest.raises(NotFound):
            await cache.delete(entry_id)
        counted = (await cache.stats())["namespaces"]["default"]
        assert counted["hits"] == 3 and counted["misses"] == 3
        assert await cache.clear() == 1
        assert isinstance(await cache.check("Tell me the capital of France"), Miss)


async def test_identical_misses_in_flight_share_one_call_and_a_plain_function_runs_off_the_loop(
    redis_server: Server, redis_client: redis.Redis
) -> None:
    calls: list[str] = []
    release = asyncio.Event()

    async def slow_llm(question: str) -> str:
        calls.append(question)
        await release.wait()
        return "42"

    async with SemanticCache(make_settings(redis_server.url)) as cache:
        racing = [
            asyncio.create_task(cache.answer("What is the answer to everything?", slow_llm))
            for _ in range(5)
        ]
        while not calls:  # the first miss is in the LLM; the others wait on it
            await asyncio.sleep(0.01)
        release.set()
        answers = await asyncio.gather(*racing)
        assert len(calls) == 1 and {a.response for a in answers} == {"42"}
        loop_thread = threading.current_thread()
        ran_on: list[threading.Thread] = []

        def blocking_llm(question: str) -> str:
            ran_on.append(threading.current_thread())
            return "blue"

        await cache.answer("What colour is the sky?", blocking_llm)
        assert ran_on and ran_on[0] is not loop_thread


async def test_clear_errors(redis_server: Server, redis_client: redis.Redis) -> None:
    cache = SemanticCache(make_settings(redis_server.url))
    with pytest.raises(NotStarted):
        await cache.check("anything")
    with pytest.raises(InvalidInput):
        SemanticCache(make_settings(redis_server.url), namespace="no spaces allowed")
    async with cache:
        with pytest.raises(ValueError, match="prompt"):
            await cache.check("")
        with pytest.raises(InvalidInput, match="not JSON"):
            await cache.store("q?", "a", message={"content": object()})

        async def not_text(question: str) -> str:
            return 42  # type: ignore[return-value]

        with pytest.raises(TypeError, match="text"):
            await cache.answer("What is six times seven?", not_text)
    with pytest.raises(NotStarted):  # closed
        await cache.check("anything")


def test_the_blocking_twin_is_generated_from_the_async_cache(
    redis_server: Server, redis_client: redis.Redis
) -> None:
    assert SyncSemanticCache.check.__doc__ == SemanticCache.check.__doc__
    with SyncSemanticCache(make_settings(redis_server.url)) as cache:
        stored = cache.answer("Who wrote Hamlet?", lambda question: "Shakespeare.")
        assert isinstance(stored, Miss)
        found = cache.check("Who is the author of Hamlet?")
        assert isinstance(found, Hit) and found.response == "Shakespeare."
    with pytest.raises(NotStarted):
        cache.check("Who wrote Hamlet?")


def _open_sockets() -> int:
    folder = Path("/proc/self/fd")
    found = 0
    for fd in os.listdir(folder):
        try:
            found += os.readlink(folder / fd).startswith("socket:")
        except OSError:  # closed while listed
            continue
    return found


def test_twenty_starts_and_closes_leave_no_thread_or_socket_behind(
    redis_server: Server, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_server.url)
    with SyncSemanticCache(settings) as cache:  # imports and one-time set-up out of the count
        cache.check("warm-up question?")
    threads, sockets = threading.active_count(), _open_sockets()
    for round_number in range(20):
        with SyncSemanticCache(settings) as cache:
            cache.answer(f"Question number {round_number}?", lambda question: "An answer.")
    assert threading.active_count() == threads, [t.name for t in threading.enumerate()]
    assert _open_sockets() <= sockets


def test_entries_cross_between_the_library_in_its_own_process_and_an_http_replica(
    redis_server: Server, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A library in a process of its own, with only the public API and another working
    directory, against a replica serving HTTP in another: each serves what the other stored."""
    program = """
import json
from dyna_cache import Hit, SyncSemanticCache

with SyncSemanticCache(pair_model="off") as cache:
    seen = cache.check("How can I reset my password?")
    entry_id = cache.store("What is the boiling point of water?", "100 degrees C at sea level")
    print(json.dumps({"seen": seen.response if isinstance(seen, Hit) else None,
                      "entry_id": entry_id}))
"""
    with ServiceProcess(redis_server.url) as replica:
        stored = replica.query("How do I reset my password?").json()
        assert stored["status"] == "MISS"
        env = {**os.environ, "DYNACACHE_REDIS_URL": redis_server.url, "HF_HUB_OFFLINE": "1",
               "DYNACACHE_LOG_LEVEL": "warning"}  # fmt: skip
        env.pop("PYTHONPATH", None)
        finished = subprocess.run(
            [sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=180,
        )  # fmt: skip
        assert finished.returncode == 0, finished.stderr[-3000:]
        told = json.loads(finished.stdout.strip().splitlines()[-1])
        assert told["seen"] == stored["response"]  # HTTP → library
        hit = replica.query("At what temperature does water boil?").json()
        assert hit["status"] == "HIT" and hit["entry_id"] == told["entry_id"]  # library → HTTP
        assert hit["response"] == "100 degrees C at sea level"
    assert not (tmp_path / "models").exists() and str(ROOT) not in str(tmp_path)


# -- what the library refuses, and what it lets a call choose ----------------------------------


def test_an_unknown_setting_is_an_error_never_ignored(
    redis_server: Server, redis_client: redis.Redis
) -> None:
    """A misspelt override used to run at the default (``treshold=0.01`` at 0.35)."""
    with pytest.raises(TypeError, match="'treshold' \\(did you mean 'threshold'\\?\\)"):
        SemanticCache(make_settings(redis_server.url), treshold=0.01)
    with pytest.raises(TypeError, match="treshold"):
        SemanticCache(treshold=0.01)  # the settings from the environment
    with pytest.raises(TypeError, match="no_such_setting"):
        SyncSemanticCache.from_settings(no_such_setting=1)
    assert SemanticCache(make_settings(redis_server.url), threshold=0.01).settings.threshold == 0.01


async def test_a_redis_that_does_not_answer_fails_start_unless_asked_to_start_degraded(
    redis_server: Server, redis_client: redis.Redis
) -> None:
    port = free_port()
    settings = make_settings(f"redis://:secret@127.0.0.1:{port}")
    cache = SemanticCache(settings)
    with pytest.raises(RedisUnreachable, match=f"127.0.0.1:{port} does not answer") as refused:
        await cache.start()
    assert "secret" not in str(refused.value) and "start_degraded" in str(refused.value)
    with pytest.raises(NotStarted):  # nothing was started
        await cache.check("What is the capital of France?")
    async with SemanticCache(settings, start_degraded=True) as degraded:
        assert isinstance(await degraded.check("What is the capital of France?"), Miss)
        passed = await degraded.answer("What is the capital of France?", lambda q: "Paris.")
        assert isinstance(passed, Miss) and passed.response == "Paris." and passed.entry_id is None


async def test_bytes_are_refused_not_decoded(
    redis_server: Server, redis_client: redis.Redis
) -> None:
    async with SemanticCache(make_settings(redis_server.url)) as cache:
        with pytest.raises(TypeError, match="prompt must be str, not bytes"):
            await cache.check(b"What is the capital of France?")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="prompt must be str"):
            await cache.answer(b"Who wrote Hamlet?", lambda q: "Shakespeare.")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="response must be str"):
            await cache.store("Who wrote Hamlet?", b"Shakespeare.")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="context must be str"):
            await cache.check("Who wrote it?", context=b"Hamlet")  # type: ignore[arg-type]
        assert not list(redis_client.scan_iter("dc:e:*"))  # nothing was stored


async def test_one_call_can_make_its_question_personal(
    redis_server: Server, redis_client: redis.Redis
) -> None:
    """In a shared namespace, ``scope="user"`` keeps one answer to its user alone."""
    async with SemanticCache(make_settings(redis_server.url)) as cache:
        question = "What is my account balance?"
        await cache.store(question, "Alice has 120 euros.", user="alice", scope="user")
        mine = await cache.check(question, user="alice", scope="user")
        assert isinstance(mine, Hit) and mine.response == "Alice has 120 euros."
        assert isinstance(await cache.check(question, user="bob", scope="user"), Miss)
        assert isinstance(await cache.check(question), Miss)  # not shared with everyone
        # personal and nobody named: not cached, and a check never asks an LLM
        nobody = await cache.check(question, scope="user")
        assert isinstance(nobody, Miss) and nobody.response is None
        answered = await cache.answer(question, lambda q: "Bob has 3 euros.", user="bob",
                                      scope="user")  # fmt: skip
        assert isinstance(answered, Miss) and answered.entry_id is not None
        assert (await cache.check(question, user="bob", scope="User")).response == (
            "Bob has 3 euros."
        )
        with pytest.raises(InvalidInput, match="name the user"):
            await cache.store(question, "Nobody's.", scope="user")
