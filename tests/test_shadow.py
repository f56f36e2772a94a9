"""Shadow mode, with a real replica and a real upstream that answers by meaning: every
request is answered by the LLM, and the cache measures what it would have served; the
measure agrees with what serving then does on the same stream. With the simulated LLM,
audits and shadow mode are off, and ``/v1/stats`` says why."""

import asyncio
import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI
from pydantic import ValidationError

from index.decision.wrong_rate import wilson
from service.cli.stats_tables import shadow_table, stats_table
from service.engine.shadow import let_through
from service.settings import Settings
from tests.fake_upstream import FakeUpstream, MeaningUpstream
from tests.helpers import CacheService, wait_until
from tests.test_chat import ask as ask_chat
from tests.test_chat import stream as stream_chat
from tests.test_chat import text_of
from tests.test_dashboard import browser  # noqa: F401 (a fixture)
from tests.test_tenants import ADMIN, admin_headers, ask, make_tenant

# questions by meaning (the upstream answers each cluster alike); neighbouring clusters
# (Canada and Mexico, cancel and pause) are near enough for a loose radius to confuse
CLUSTERS = {
    "password": ["How do I reset my password?", "How can I reset my password?",
                 "What is the way to reset my password?",
                 "I forgot my password, how do I reset it?"],
    "username": ["How do I change my username?", "How can I change my user name?",
                 "Can I change my username?"],
    "france": ["What is the capital of France?", "Which city is the capital of France?",
               "Tell me the capital of France"],
    "refund": ["How do I get a refund?", "How can I get my money back?",
               "Can I get a refund for my order?"],
    "shipping": ["How long does shipping take?", "How many days does delivery take?",
                 "When will my order arrive?"],
    "canada": ["Do you ship to Canada?", "Can you deliver to Canada?"],
    "mexico": ["Do you ship to Mexico?", "Can you deliver to Mexico?"],
    "cancel": ["How do I cancel my subscription?", "How can I cancel my subscription?",
               "I want to cancel my subscription"],
    "pause": ["How do I pause my subscription?", "Can I pause my subscription?"],
    "python": ["How do I reverse a list in Python?", "How can I reverse a Python list?"],
}  # fmt: skip
ANSWERS = {
    "password": "Open Settings, choose Security and press the reset link we email you.",
    "username": "Usernames are permanent once the account is created.",
    "france": "Paris.",
    "refund": "Refunds go back to your card within five working days.",
    "shipping": "Parcels usually arrive three to five days after dispatch.",
    "canada": "Yes: Canadian orders travel by air mail.",
    "mexico": "Sorry, Mexico is outside our delivery area for now.",
    "cancel": "Cancelling stops the renewal; you keep access until the period ends.",
    "pause": "Pausing freezes billing for up to three months.",
    "python": "Use my_list.reverse(), or my_list[::-1] for a copy.",
}
CLUSTER_OF = {question: cluster for cluster, asked in CLUSTERS.items() for question in asked}
RADIUS = 0.6  # loose: some would-be HITs answer a neighbouring cluster's question


def answer_of(question: str) -> str:
    return ANSWERS[CLUSTER_OF[question]]


def questions(count: int = 160, seed: int = 7) -> list[str]:
    """A Zipf-like stream over the questions: a few often, most now and then."""
    rng = random.Random(seed)
    order = sorted(CLUSTER_OF)
    rng.shuffle(order)
    weights = [1 / (rank + 1) ** 0.7 for rank in range(len(order))]
    return rng.choices(order, weights, k=count)


@pytest.fixture
def meaning() -> Iterator[MeaningUpstream]:
    server = MeaningUpstream(lambda question: [answer_of(question)])
    server.start()
    yield server
    server.stop()


def real_llm(start_service: Callable[..., CacheService], base_url: str,
             **settings: Any) -> CacheService:  # fmt: skip
    return start_service(
        admin_token=ADMIN, llm="openai", openai_base_url=base_url, openai_api_key="sk-test",
        openai_model="meaning", llm_max_retries=0, **settings,
    )  # fmt: skip


def settled(service: CacheService) -> dict[str, Any]:
    """``/v1/stats`` once the shadow counts under way are in Redis."""
    shadow = service.runtime.queries.outcomes.shadow
    assert shadow is not None
    asyncio.run_coroutine_threadsafe(shadow.settle(30), service.loop).result(40)
    numbers: dict[str, Any] = service.http.get("/v1/stats", headers=admin_headers()).json()
    return numbers


def inside(value: float, interval: tuple[float, float]) -> bool:
    return interval[0] - 1e-9 <= value <= interval[1] + 1e-9


def test_shadow_measures_what_serving_then_does(
    start_service: Callable[..., CacheService], meaning: MeaningUpstream
) -> None:
    service = real_llm(start_service, meaning.base_url)
    shadowed = make_tenant(service, "shadowed", mode="shadow", threshold=RADIUS)
    served = make_tenant(service, "served", threshold=RADIUS)
    stream = questions()

    # shadow: every request is the upstream's, and says what the cache would have done
    statuses = []
    for question in stream:
        answer = ask(service, shadowed, question)
        body = answer.json()
        assert body["response"] == answer_of(question)  # always the upstream's answer
        assert answer.headers["X-Cache"] == body["status"]
        statuses.append(body["status"])
    assert set(statuses) == {"SHADOW-HIT", "SHADOW-MISS"}
    assert len(meaning.asked) == len(stream)  # one call each: nothing served, nothing shared

    # serving: the same stream on a fresh namespace
    hits = exact = semantic = wrong = 0
    for question in stream:
        body = ask(service, served, question).json()
        if body["status"] == "HIT":
            hits += 1
            exact += body["distance"] == 0
            if body["distance"] > 0:
                semantic += 1
                wrong += body["response"] != answer_of(question)
    assert semantic >= 10 and wrong >= 2  # the stream exercises right and wrong HITs

    numbers = settled(service)
    shadow = numbers["namespaces"]["shadowed"]["shadow"]
    assert "shadow" not in numbers["namespaces"]["served"]
    requests = len(stream)
    assert shadow["requests"] == requests
    assert shadow["exact_hits"] + shadow["semantic_hits"] + shadow["misses"] == requests
    # the would-be hit rates hold what serving did, and the other way round
    would_hit = shadow["exact_hits"] + shadow["semantic_hits"]
    assert inside(hits / requests, wilson(would_hit, requests))
    assert inside(would_hit / requests, wilson(hits, requests))
    assert inside(exact / requests, wilson(shadow["exact_hits"], requests))
    assert inside(semantic / requests, wilson(shadow["semantic_hits"], requests))
    # the would-be semantic HITs' wrong-answer rate holds serving's true one
    rate = shadow["wrong_answer_rate"]
    assert rate["audits"] == shadow["semantic_hits"] and rate["uncompared"] == 0
    assert inside(wrong / semantic, (rate["low"], rate["high"]))
    assert inside(rate["estimate"], wilson(wrong, semantic))
    # by distance band and by decision stage, adding up
    assert sum(band["audits"] for band in rate["by_distance"].values()) == rate["audits"]
    assert rate["by_stage"]["static"]["audits"] == rate["audits"]
    assert sum(band["wrong"] for band in rate["by_distance"].values()) == rate["wrong"]
    # what it would have saved
    assert shadow["llm_calls_saved"] == would_hit
    assert shadow["cost_saved_usd"] == pytest.approx(would_hit * 0.002)
    # the LLM's time less the lookup's (this fake answers in a millisecond or two)
    assert shadow["avg_hit_latency_ms"] > 0 and "latency_saved_ms" in shadow
    # what a bound would have let through: with the shadow's comparisons as its evidence
    evidence = numbers["namespaces"]["shadowed"]["wrong_answer_rate"]["bound_evidence"]
    assert sum(group["audits"] for group in evidence.values()) > 0
    assert [b["max_wrong_rate"] for b in shadow["bounds"]] == [0.01, 0.02, 0.05, 0.1, 0.2]
    shares = [b["semantic_hits_served"] for b in shadow["bounds"]]
    assert shares == sorted(shares)  # a looser bound lets through no fewer
    assert numbers["shadow"]["requests"] == requests  # the total
    # the client saw no cached answer: served nothing, counted as misses
    assert numbers["namespaces"]["shadowed"]["hits"] == 0
    metrics = service.http.get("/metrics").text
    assert (f'dynacache_shadow_requests_total{{namespace="shadowed",would_be="semantic"}} '
            f'{float(shadow["semantic_hits"])}') in metrics  # fmt: skip
    assert "dynacache_shadow_compared_total" in metrics
    assert shadow_table(numbers) is not None  # dyna-cache stats shows it


def test_what_a_bound_lets_through_is_the_groups_its_evidence_opens() -> None:
    """The groups the bound's own rule would serve (``open_groups``), and the compared
    would-be semantic HITs that fell in them."""
    counts = {"compared:group:<0.05": 40, "compared:group:<0.1": 30, "wrong:group:<0.1": 3,
              "compared:group:<0.35": 30, "wrong:group:<0.35": 15}  # fmt: skip
    evidence = {"evidence:<0.05": 400, "evidence:<0.1": 300, "evidence_wrong:<0.1": 3,
                "evidence:<0.35": 300, "evidence_wrong:<0.35": 150,
                "offered:<0.05": 400, "offered:<0.1": 300, "offered:<0.35": 300}  # fmt: skip
    strict, loose = let_through(counts, evidence, 0.05), let_through(counts, evidence, 0.6)
    assert "<0.35" not in strict[0] and {"<0.05", "<0.1"} <= set(strict[0])
    assert strict[1:] == (70, 3)
    assert "<0.35" in loose[0] and loose[1:] == (100, 18)
    assert let_through(counts, evidence, 0.0001) == ([], 0, 0)


def test_a_request_or_a_tenant_chooses_shadow_and_serve(
    start_service: Callable[..., CacheService], meaning: MeaningUpstream
) -> None:
    service = real_llm(start_service, meaning.base_url)
    shadowed = make_tenant(service, "quiet", mode="shadow")
    question, paraphrase = CLUSTERS["password"][0], CLUSTERS["password"][1]
    assert ask(service, shadowed, question).json()["status"] == "SHADOW-MISS"
    # the request's mode first: served from what the shadow kept
    assert ask(service, shadowed, paraphrase, mode="serve").json()["status"] == "HIT"
    headers = {"Authorization": f"Bearer {shadowed}", "X-Cache-Mode": "Serve"}
    served = service.http.post("/v1/query", json={"prompt": paraphrase}, headers=headers)
    assert served.json()["status"] == "HIT"
    shadow_hit = ask(service, shadowed, paraphrase).json()
    assert shadow_hit["status"] == "SHADOW-HIT" and shadow_hit["matched_prompt"] == question
    assert shadow_hit["llm_latency_ms"] is not None  # the LLM answered
    bad = service.http.post("/v1/query", json={"prompt": paraphrase},
                            headers={**headers, "X-Cache-Mode": "sometimes"})  # fmt: skip
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cache_mode"


def test_the_service_runs_in_shadow_mode_through_the_client_apis(
    start_service: Callable[..., CacheService], upstream: FakeUpstream
) -> None:
    """DYNACACHE_MODE=shadow: a chat completion, whole or streamed, is the upstream's every
    time, with the cache's would-be status in X-Cache; X-Cache-Mode: serve serves."""
    service = start_service(
        llm="openai", openai_base_url=upstream.base_url, openai_api_key="sk-test",
        llm_max_retries=0, mode="shadow",
    )  # fmt: skip
    client = OpenAI(base_url=f"{service.url}/v1", api_key="sk-any", max_retries=0, timeout=30)
    try:
        question = "What is the capital of France?"
        first, headers = ask_chat(client, question)
        assert headers["x-cache"] == "SHADOW-MISS" and first.id == "chatcmpl-1"
        again, headers = ask_chat(client, question)
        assert headers["x-cache"] == "SHADOW-HIT" and again.id == "chatcmpl-2"
        chunks, headers = stream_chat(client, question)
        assert headers["x-cache"] == "SHADOW-HIT"
        assert text_of(chunks).strip() == f"Upstream says: {question}"
        assert len(upstream.requests) == 3  # each one the upstream's
        served = client.chat.completions.with_raw_response.create(
            model="fake-model", messages=[{"role": "user", "content": question}],
            extra_headers={"X-Cache-Mode": "serve"},
        )  # fmt: skip
        assert served.headers["x-cache"] == "HIT" and len(upstream.requests) == 3
    finally:
        client.close()
    numbers = settled_open(service)
    assert numbers["mode"] == "shadow"
    assert numbers["shadow"]["requests"] == 3 and numbers["shadow"]["exact_hits"] == 2


def settled_open(service: CacheService) -> dict[str, Any]:
    shadow = service.runtime.queries.outcomes.shadow
    assert shadow is not None
    asyncio.run_coroutine_threadsafe(shadow.settle(30), service.loop).result(40)
    numbers: dict[str, Any] = service.http.get("/v1/stats").json()
    return numbers


def test_with_the_simulated_llm_audits_and_shadow_mode_are_off(
    start_service: Callable[..., CacheService],
) -> None:
    """The simulated LLM's answers are made up: no audit compares them, a shadow request is
    refused, and /v1/stats says why."""
    service = start_service(audit_rate=1.0, audit_max_per_s=100)
    assert service.query("How do I reset my password?").json()["status"] == "MISS"
    hit = service.query("How can I reset my password?").json()
    assert hit["status"] == "HIT" and hit["distance"] > 0
    auditor = service.runtime.queries.outcomes.auditor
    assert auditor is not None
    asyncio.run_coroutine_threadsafe(auditor.settle(), service.loop).result(30)
    numbers = service.http.get("/v1/stats").json()
    assert numbers["audits"]["enabled"] is False
    assert numbers["audits"]["reason"].startswith("simulated LLM")
    assert numbers["namespaces"]["default"]["wrong_answer_rate"]["audits"] == 0
    assert "audits off: simulated LLM" in str(stats_table(numbers).caption)  # dyna-cache stats
    refused = service.query("How can I reset my password?", mode="shadow")
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "shadow_needs_a_real_llm"
    chat = httpx.post(
        f"{service.url}/v1/chat/completions", headers={"X-Cache-Mode": "shadow"},
        json={"model": "m", "messages": [{"role": "user", "content": "Hello there"}]},
    )  # fmt: skip
    assert chat.status_code == 422
    with pytest.raises(ValidationError, match="needs a real LLM"):
        Settings(mode="shadow")
    assert Settings(mode="shadow", audit_simulated=True).mode == "shadow"


def test_the_dashboard_shows_what_shadow_mode_would_have_served(
    start_service: Callable[..., CacheService], upstream: FakeUpstream,
    browser: Any,  # noqa: F811 (the fixture imported above)
) -> None:  # fmt: skip
    from selenium.webdriver.common.by import By

    service = start_service(
        llm="openai", openai_base_url=upstream.base_url, openai_api_key="sk-test",
        llm_max_retries=0, mode="shadow",
    )  # fmt: skip
    for _ in range(2):  # a would-be MISS, then a would-be exact HIT
        service.query("What is the capital of France?")
    assert settled_open(service)["shadow"]["requests"] == 2

    def text(element_id: str) -> str:
        return str(browser.find_element(By.ID, element_id).text)

    browser.get(f"{service.url}/dashboard")
    wait_until(lambda: text("shadow-hit-rate") == "50.0%", 15, message="the shadow tile")
    assert text("shadow-exact") == "50.0%" and text("shadow-semantic") == "0.0%"
    assert text("shadow-wrong") == "none compared yet"
