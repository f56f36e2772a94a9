"""Every API says why a near candidate was not served, and the rules over what differs hold
in every stage: ``/v1/query``'s ``refused_by``, the proxies' ``X-Cache-Refused-By``, the
library's ``Miss.refused_by``. The prompts here are written for these tests, not taken from
the examples the rules were written from."""

from collections.abc import Callable

import pytest
import redis

from devtools.redis_cluster import EmbeddedCluster
from dyna_cache import Hit, Miss, SyncSemanticCache
from service.embedded_redis import EmbeddedRedis
from tests.conftest import make_settings
from tests.helpers import CacheService, store_entries

REPORT = (
    "Our support team logged the following tickets this week: login failures after the "
    "password reset email, slow exports of large spreadsheets, a billing page that shows "
    "the wrong currency for Swiss customers, and two crashes of the desktop client on start. "
    "Group the tickets by product area and suggest which one to fix first."
)


REQUEST = "Summarise the two crashes of the desktop client that Swiss customers reported."


@pytest.mark.parametrize("stage", ["static", "default"])
@pytest.mark.parametrize(
    ("asked", "refused_by"),
    [
        (REQUEST + " Write your answer in Italian.", "rule:instruction"),
        (REQUEST.replace("two crashes", "five crashes"), "rule:numbers"),
        (REQUEST.replace("Swiss customers", "Belgian customers"), "rule:name"),
        (REQUEST.replace("Summarise", "Translate"), "rule:instruction"),
    ],
)
def test_query_says_which_rule_refused_a_near_request_in_every_stage(
    start_service: Callable[..., CacheService], stage: str, asked: str, refused_by: str
) -> None:
    service = start_service(**({"pair_model": "off"} if stage == "static" else {}))
    store_entries(service.http, [{"prompt": REQUEST, "response": "Two start-up crashes."}])
    answer = service.query(asked, cache="only")
    assert answer.json()["status"] == "MISS"
    assert answer.json()["refused_by"] == refused_by
    assert answer.headers["X-Cache-Refused-By"] == refused_by


@pytest.mark.parametrize("stage", ["static", "default"])
def test_a_long_prompt_is_served_only_as_the_same_request_and_never_embedded_to_look_it_up(
    start_service: Callable[..., CacheService], stage: str
) -> None:
    service = start_service(**({"pair_model": "off"} if stage == "static" else {}))
    store_entries(service.http, [{"prompt": REPORT, "response": "Fix billing first."}])
    for asked in ("Good morning! " + REPORT, REPORT + " Many thanks in advance.",
                  REPORT.upper(), "  ".join(REPORT.split())):  # fmt: skip
        answer = service.query(asked, cache="only")
        assert answer.json()["status"] == "HIT", asked
        assert "embed" not in answer.headers["Server-Timing"]
    for asked in (REPORT.replace("two crashes", "five crashes"), REPORT + " Answer in German.",
                  REPORT.replace("slow exports", "slow imports")):  # fmt: skip
        answer = service.query(asked, cache="only")
        assert answer.json()["status"] == "MISS", asked
        assert "embed" not in answer.headers["Server-Timing"]


def test_the_proxy_says_what_refused_the_nearest_candidate(proxied: CacheService) -> None:
    question = "List three uses of vinegar in the kitchen."
    body = {"model": "fake-model", "messages": [{"role": "user", "content": question}]}
    assert proxied.http.post("/v1/chat/completions", json=body).headers["X-Cache"] == "MISS"
    body["messages"] = [{"role": "user", "content": question + " Keep it under 20 words."}]
    missed = proxied.http.post("/v1/chat/completions", json=body)
    assert missed.headers["X-Cache"] == "MISS"
    assert missed.headers["X-Cache-Refused-By"] == "rule:numbers"


def test_the_library_miss_names_what_refused(
    redis_server: EmbeddedRedis | EmbeddedCluster, redis_client: redis.Redis
) -> None:
    with SyncSemanticCache(make_settings(redis_server.url)) as cache:
        cache.answer("How long should I boil an egg?", lambda question: "Nine minutes.")
        served = cache.check("Hi there! How long should I boil an egg?")
        assert isinstance(served, Hit)
        refused = cache.check("How long should I boil an egg? Reply in Portuguese, please.")
        assert isinstance(refused, Miss) and refused.refused_by == "rule:instruction"
