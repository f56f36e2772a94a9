"""Audited hits, with real replicas and a real upstream that answers by meaning: a share of
the semantic HITs is asked of the LLM again in the background, the fresh answer compared
with the served one, and the verdict counted in Redis (so every replica reports the same
wrong-answer rate, with its interval) and fed to the entry (a wrong one narrows it)."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from index.decision.wrong_rate import (
    VOUCHED,
    band_of,
    estimate,
    evidence_group,
    evidence_interval,
    open_groups,
    summary,
    wilson,
)
from index.store import keys
from service.engine.audits import JUDGE_INSTRUCTION, judge_verdict
from service.keying.normalise import normalise_prompt
from tests.fake_upstream import FakeUpstream, MeaningUpstream
from tests.helpers import CacheService, wait_until

ANSWERS = {
    "france": ["Paris, on the Seine, has been the French capital for centuries.",
               "The French capital is Paris, a city on the river Seine.",
               "For centuries Paris, on the Seine, has been France's capital city."],
    "germany": ["Berlin became the German seat of government after reunification in 1990.",
                "Since reunification in 1990 the German government sits in Berlin."],
}  # fmt: skip


@pytest.fixture
def meaning() -> Iterator[MeaningUpstream]:
    server = MeaningUpstream(MeaningUpstream.topics(ANSWERS))
    server.start()
    yield server
    server.stop()


# asked with a loose threshold after Germany's capital: no rule refuses it (not one name for
# another), so it is served the wrong answer
FRANCE_TOO = "What is the capital of France and what is it known for?"


def audited(start_service: Callable[..., CacheService], upstream: MeaningUpstream,
            **settings: Any) -> CacheService:  # fmt: skip
    chosen = {"audit_rate": 1.0, "audit_max_per_s": 100, **settings}
    return start_service(
        llm="openai", openai_base_url=upstream.base_url, openai_api_key="sk-test",
        openai_model="meaning", llm_max_retries=0, **chosen,
    )  # fmt: skip


def rate_of(service: CacheService) -> dict[str, Any]:
    stats = service.http.get("/v1/stats").json()
    rate: dict[str, Any] = stats["namespaces"]["default"]["wrong_answer_rate"]
    return rate


def test_a_right_hit_is_audited_in_the_background_and_counted_right(
    start_service: Callable[..., CacheService], meaning: MeaningUpstream,
    redis_client: redis.Redis,
) -> None:  # fmt: skip
    service = audited(start_service, meaning)
    stored = service.query("What is the capital of France?").json()
    assert stored["status"] == "MISS"
    hit = service.query("Tell me the capital of France").json()
    assert hit["status"] == "HIT" and hit["distance"] > 0
    assert hit["response"] == stored["response"]  # the HIT's answer is the stored one
    wait_until(lambda: rate_of(service)["audits"] == 1, 15, message="the audit is counted")
    rate = rate_of(service)
    assert (rate["wrong"], rate["estimate"]) == (0, 0.0)
    assert rate["low"] == 0.0 and 0 < rate["high"] < 1
    assert rate["by_distance"][band_of(hit["distance"])]["audits"] == 1
    assert rate["llm_calls"] == 1 and rate["cost_usd"] > 0  # what the estimate cost
    assert meaning.asked.count("Tell me the capital of France") == 1
    entry = keys.entry_key("default", hit["entry_id"])
    assert int(redis_client.hget(entry, "au_right") or 0) == 1
    # an exact repeat is right by definition (never audited); a repeat of an audited pair
    # is counted again with its verdict, without asking the LLM (audits stay a random
    # sample of the HITs, repeats included); a new paraphrase is asked
    assert service.query("What is the capital of France?").json()["distance"] == 0
    assert service.query("Tell me the capital of France").json()["status"] == "HIT"
    assert service.query("Which city is the capital of France?").json()["status"] == "HIT"
    wait_until(lambda: rate_of(service)["audits"] == 3, 15, message="three audits")
    assert meaning.asked.count("Tell me the capital of France") == 1
    assert "What is the capital of France?" not in meaning.asked[1:]
    assert rate_of(service)["llm_calls"] == 2 and rate_of(service)["wrong"] == 0


def test_a_wrong_hit_is_counted_wrong_on_every_replica_and_narrows_its_entry(
    start_service: Callable[..., CacheService], meaning: MeaningUpstream,
) -> None:  # fmt: skip
    first = audited(start_service, meaning)
    second = audited(start_service, meaning)
    assert first.query("What is the capital of Germany?").json()["status"] == "MISS"
    # a threshold so loose that Germany's answer is served for France: a wrong answer
    wrong = first.query(
        "What is the capital of France and what is it known for?", threshold=4.0
    ).json()
    assert wrong["status"] == "HIT" and "Berlin" in wrong["response"]
    wait_until(lambda: rate_of(second)["audits"] == 1, 15, message="audited on replica A")
    rate = rate_of(second)  # read through replica B: the counts live in Redis
    assert (rate["wrong"], rate["estimate"]) == (1, 1.0)
    assert rate["low"] > 0 and rate["high"] == 1.0
    # the audit fed the entry's feedback: the same question is no longer served it
    again = second.query(
        "What is the capital of France and what is it known for?", threshold=4.0
    ).json()
    assert again["status"] == "MISS"
    metrics = first.http.get("/metrics").text
    assert 'dynacache_audits_total{namespace="default",verdict="wrong"} 1.0' in metrics


def test_audits_off_and_the_namespace_budget(
    start_service: Callable[..., CacheService], meaning: MeaningUpstream,
) -> None:  # fmt: skip
    off = audited(start_service, meaning, audit_rate=0.0)
    off.query("What is the capital of France?")
    assert off.query("Tell me the capital of France").json()["status"] == "HIT"
    assert rate_of(off)["audits"] == 0 and rate_of(off)["estimate"] is None
    # a budget of one audit a second: of a burst of paraphrases, one is audited
    budget = audited(start_service, meaning, audit_max_per_s=0.001)
    budget.query("Which city is the capital of France?")
    budget.query("France's capital city is which?")
    budget.query("Name the capital city of France")
    wait_until(lambda: rate_of(budget)["audits"] == 1, 15, message="one audit")
    skipped = 'dynacache_audits_skipped_total{reason="budget"} 2.0'
    wait_until(lambda: skipped in budget.http.get("/metrics").text, 15,
               message="the others skipped")  # fmt: skip
    assert meaning.asked[0] == "What is the capital of France?" and len(meaning.asked) == 2


def judging(reply_of: Callable[[str, str], str]) -> Callable[[str], list[str]]:
    """Answers by topic, and the LLM judge's reply through ``reply_of(answer_a, answer_b)``."""
    by_topic = MeaningUpstream.topics(ANSWERS)

    def answer(question: str) -> list[str]:
        if not question.startswith(JUDGE_INSTRUCTION):
            return by_topic(question)
        served = question.split("Answer A: ")[1].split("\n\nAnswer B: ")[0]
        fresh = question.split("Answer B: ")[1].split("\n\nSame answer")[0]
        return [reply_of(served, fresh)]

    return answer


def same_city(served: str, fresh: str) -> str:
    return "Yes." if ("Paris" in served) == ("Paris" in fresh) else "No, they differ."


def test_the_llm_judge_decides_and_its_call_is_counted(
    start_service: Callable[..., CacheService],
) -> None:
    with MeaningUpstream(judging(same_city)) as upstream:
        service = audited(start_service, upstream, audit_check="llm")
        service.query("What is the capital of Germany?")
        # so loose a threshold that Germany's answer is served for France: judged wrong
        wrong = service.query(
            "What is the capital of France and what is it known for?", threshold=4.0
        ).json()
        assert wrong["status"] == "HIT" and "Berlin" in wrong["response"]
        wait_until(lambda: rate_of(service)["wrong"] == 1, 15, message="judged wrong")
        assert service.query("What is the capital of France?").json()["status"] == "MISS"
        assert service.query("Tell me the capital of France").json()["status"] == "HIT"
        wait_until(lambda: rate_of(service)["audits"] == 2, 15, message="judged right")
        assert rate_of(service)["wrong"] == 1
        # each audit: the fresh answer and the judge's reply
        assert rate_of(service)["llm_calls"] == 4
        judged = [q for q in upstream.asked if q.startswith(JUDGE_INSTRUCTION)]
        assert len(judged) == 2 and "Question: Tell me the capital of France" in judged[1]


def test_an_llm_judge_without_a_verdict_counts_nothing_and_releases_the_pair(
    start_service: Callable[..., CacheService], redis_client: redis.Redis,
) -> None:  # fmt: skip
    with MeaningUpstream(judging(lambda _a, _b: "Perhaps; it depends.")) as upstream:
        service = audited(start_service, upstream, audit_check="llm")
        service.query("What is the capital of France?")
        paraphrase = "Tell me the capital of France"
        hit = service.query(paraphrase).json()
        claim = keys.audit_claim_key("default", hit["entry_id"], normalise_prompt(paraphrase))
        wait_until(lambda: len(upstream.asked) == 3, 15, message="asked for a verdict")
        wait_until(lambda: not redis_client.exists(claim), 15, message="the pair released")
        assert rate_of(service)["audits"] == 0
        # no verdict was kept: the next HIT of the pair is audited again
        assert service.query(paraphrase).json()["status"] == "HIT"
        wait_until(lambda: len(upstream.asked) == 5, 15, message="asked again")


def test_the_judge_reply_is_read_by_its_first_word() -> None:
    assert judge_verdict("Yes.") is True and judge_verdict("  no, they differ") is False
    assert judge_verdict("**YES**") is True and judge_verdict("") is None
    assert judge_verdict("Maybe") is None and judge_verdict("Not the same") is None


def test_the_estimate_and_its_interval() -> None:
    low, high = wilson(10, 100)
    assert low < 0.1 < high and high - low < 0.13
    assert wilson(0, 0) == (0.0, 1.0)
    assert estimate(0, 0)["estimate"] is None
    counted = summary({"audits": 4, "wrong": 1, "audits:<0.1": 3, "wrong:<0.1": 1,
                       "audits:<0.35": 1, "calls": 4, "cost_usd": 0.008})  # fmt: skip
    assert counted["estimate"] == 0.25 and counted["by_distance"]["<0.1"]["wrong"] == 1
    assert counted["by_distance"]["<0.35"]["estimate"] == 0.0 and counted["cost_usd"] == 0.008
    assert counted["llm_calls"] == 4
    assert [band_of(d) for d in (0.0, 0.07, 0.3, 2.0)] == ["<0.05", "<0.1", "<0.35", "<4"]


def test_a_bound_with_no_evidence_errs_toward_a_miss_and_gathers_evidence_for_free(
    start_service: Callable[..., CacheService], meaning: MeaningUpstream,
    redis_client: redis.Redis,
) -> None:  # fmt: skip
    service = audited(start_service, meaning, audit_rate=0.0, max_wrong_rate=0.05)
    service.query("What is the capital of France?")
    # no audit says the bound holds at any distance: the paraphrase is a MISS
    withheld = service.query("Tell me the capital of France").json()
    assert withheld["status"] == "MISS"
    assert service.query("What is the capital of France?").json()["status"] == "HIT"  # exact
    # the MISS's own answer was compared with the candidate it withheld: evidence for the
    # bound, no call; not an audit of a served HIT, so not in the estimate
    band = band_of(withheld["distance"])
    wait_until(lambda: rate_of(service)["bound_evidence"].get(band, {}).get("audits") == 1, 15,
               message="the free comparison")  # fmt: skip
    assert rate_of(service)["audits"] == 0 and rate_of(service)["cost_usd"] == 0.0
    assert meaning.asked.count("Tell me the capital of France") == 1  # the MISS's call only
    # the MISS's answer was stored; the withheld verdict is kept on it, and each exact
    # repeat counts it again (as a served HIT's repeats are audited again)
    made = keys.entry_key("default", withheld["entry_id"])
    wait_until(lambda: redis_client.hget(made, "wh") == f"{band}|1".encode(), 15,
               message="the verdict kept on the MISS's entry")  # fmt: skip
    repeat = service.query("Tell me the capital of France").json()
    assert (repeat["status"], repeat["distance"]) == ("HIT", 0)
    wait_until(lambda: rate_of(service)["bound_evidence"][band]["audits"] == 2, 15,
               message="the repeat counted")  # fmt: skip
    assert rate_of(service)["audits"] == 0
    # two counts of one pair are one observation: squares 1 + 3, effective (2 * 2) / 4
    assert rate_of(service)["bound_evidence"][band]["effective"] == 1.0
    assert int(redis_client.hget(keys.audit_key("default"), f"evidence_sq:{band}")) == 4


def test_a_bound_serves_on_its_priors_and_counts_what_each_group_is_offered(
    start_service: Callable[..., CacheService], meaning: MeaningUpstream,
    redis_client: redis.Redis,
) -> None:  # fmt: skip
    """Before any audit the groups' priors decide: under a loose bound a near paraphrase is
    served (the bound used to serve nothing until every band had evidence), under a tight
    one it is not; a served semantic HIT is counted as offered to its group."""
    service = audited(start_service, meaning, audit_rate=0.0)
    service.query("What is the capital of France?")
    tight = service.query("Tell me the capital of France", cache="only", max_wrong_rate=0.01)
    assert tight.json()["status"] == "MISS"
    loose = service.query("Tell me the capital of France", max_wrong_rate=0.4).json()
    assert loose["status"] == "HIT" and loose["distance"] > 0
    offered = f"offered:{band_of(loose['distance'])}"
    wait_until(lambda: redis_client.hget(keys.audit_key("default"), offered) == b"1", 15,
               message="the served HIT counted as offered")  # fmt: skip


def test_a_bound_serves_as_far_as_the_audits_show_it_holds(
    start_service: Callable[..., CacheService], meaning: MeaningUpstream,
    redis_client: redis.Redis,
) -> None:  # fmt: skip
    first = audited(start_service, meaning, audit_rate=0.0)
    second = audited(start_service, meaning, audit_rate=0.0)
    first.query("What is the capital of France?")
    near = first.query("Tell me the capital of France", cache="only").json()
    assert near["status"] == "HIT"
    band = band_of(near["distance"])
    # evidence so far: 200 right in the bands up to the paraphrase's, 30 of 60 wrong beyond
    counts = {f"evidence:{band}": 200, "evidence:<4": 60, "evidence_wrong:<4": 30}
    redis_client.hset(keys.audit_key("default"), mapping=counts)
    ask = {"cache": "only", "max_wrong_rate": 0.05}
    wait_until(  # the replicas read the counts within a second
        lambda: second.query("Tell me the capital of France", **ask).json()["status"] == "HIT",
        10, message="the bound lets the near paraphrase be served",
    )  # fmt: skip
    far = second.query("Paris or Lyon: which is the capital of France?", threshold=4.0, **ask)
    assert far.json()["status"] == "MISS"  # a band whose audits break the bound
    loose = {"cache": "only", "max_wrong_rate": 0.9, "threshold": 4.0}
    wait_until(
        lambda: second.query("Paris or Lyon: which is the capital of France?", **loose)
        .json()["status"] == "HIT", 10, message="a looser bound serves it",
    )  # fmt: skip


def test_repeats_of_one_question_count_as_one_observation() -> None:
    """The STS-B stream served 62 % wrong under a bound of 37 % when every repeat counted as
    an observation: a few popular questions made the evidence look certain."""
    # 100 distinct right pairs, then one wrong pair counted 60 times: weighted 60/160 wrong
    counted, wrong, squares = 160.0, 60.0, 100.0 + 60.0 * 60.0
    low, high = evidence_interval(counted, wrong, squares)
    assert low < wrong / counted < high and high - low > 0.4  # ~7 observations, not 160
    assert evidence_interval(160.0, 60.0, 160.0)[1] < 0.48  # as if independent: narrow
    repeated = {"evidence:<0.1": counted, "evidence_wrong:<0.1": wrong, "evidence_sq:<0.1": squares}
    independent = {"evidence:<0.1": 160, "evidence_wrong:<0.1": 60}
    assert "<0.1" not in open_groups(independent, 0.3)  # 60 of 160 observed: closed
    assert "<0.1" in open_groups(repeated, 0.3)  # ~7 observations: the prior still counts


def test_the_vouched_group_is_counted_apart() -> None:
    assert evidence_group(0.2, vouched=True) == VOUCHED
    assert evidence_group(0.2, vouched=False) == "<0.35"
    assert evidence_group(0.2, vouched=False, confidence=0.83) == "p>=0.8"
    counted = summary({f"evidence:{VOUCHED}": 80, "evidence:<0.1": 3, "evidence_wrong:<0.1": 1})
    assert counted["bound_evidence"][VOUCHED]["audits"] == 80
    assert counted["bound_evidence"]["<0.1"]["wrong"] == 1 and counted["audits"] == 0


def test_an_entry_learns_how_far_it_is_right_and_is_served_that_far_past_the_threshold(
    start_service: Callable[..., CacheService], meaning: MeaningUpstream,
    redis_client: redis.Redis,
) -> None:  # fmt: skip
    """vCache's idea, per entry: a query found right for an entry at some distance (here a
    withheld candidate, compared with its MISS's answer) widens the entry's verified radius;
    once the vouched candidates' evidence holds the bound, a candidate inside that radius is
    served on any replica, past the static threshold too; one outside it is not."""
    far, near = "Which city is the capital of France?", "Tell me the capital of France"
    first = audited(start_service, meaning, audit_rate=0.0, max_wrong_rate=0.05)
    second = audited(start_service, meaning, audit_rate=0.0, max_wrong_rate=0.05)
    stored = first.query("What is the capital of France?").json()
    entry = keys.entry_key("default", stored["entry_id"])
    distances = {
        q: first.query(q, cache="only", threshold=4.0, max_wrong_rate=0.99).json()["distance"]
        for q in (far, near, "Paris or Lyon: which is the capital of France?")
    }
    if distances[near] >= distances[far]:
        far, near = near, far
    # no evidence: the farther paraphrase is a MISS, and its answer teaches the entry
    assert first.query(far).json()["status"] == "MISS"
    wait_until(lambda: redis_client.hget(entry, "vf_radius") is not None, 15,
               message="the entry's verified radius")  # fmt: skip
    assert float(redis_client.hget(entry, "vf_radius")) == pytest.approx(distances[far], abs=1e-4)
    # the vouched group has no evidence yet: still a MISS (cache=only: nothing is stored)
    assert second.query(near, cache="only", threshold=0.01).json()["status"] == "MISS"
    redis_client.hset(keys.audit_key("default"), mapping={f"evidence:{VOUCHED}": 150})
    wait_until(  # past a threshold of 0.01, inside the entry's verified radius: served
        lambda: second.query(near, cache="only", threshold=0.01).json()["status"] == "HIT",
        10, message="the vouched candidate is served",
    )  # fmt: skip
    beyond = "Paris or Lyon: which is the capital of France?"
    if distances[beyond] > distances[far]:  # outside the verified radius: not vouched
        assert second.query(beyond, cache="only", threshold=0.01).json()["status"] == "MISS"


def test_a_client_report_never_widens_what_the_bound_serves(
    start_service: Callable[..., CacheService], meaning: MeaningUpstream,
    redis_client: redis.Redis,
) -> None:  # fmt: skip
    """A right report is a client's word, not a check: counted as a report (as far as the
    search reach), it never widens the entry's verified radius and is no evidence for the
    bound. Else one report about "zebra" let the vouched group, opened by other entries'
    evidence, serve this entry to any question inside the search reach."""
    service = audited(start_service, meaning, max_wrong_rate=0.5)
    stored = service.query("What is the capital of France?").json()
    entry_id = stored["entry_id"]
    entry = keys.entry_key("default", entry_id)
    zebra = service.http.post(
        "/v1/feedback", json={"entry_id": entry_id, "prompt": "zebra", "correct": True}
    )
    assert zebra.status_code == 200 and zebra.json()["distance"] > 1
    assert redis_client.hget(entry, "vf_radius") is None  # not widened by a report
    assert redis_client.hget(entry, "fb_right") is None  # beyond the search reach: nothing
    assert redis_client.llen(keys.feedback_key("default", entry_id)) == 1  # kept, as said
    near = {"entry_id": entry_id, "prompt": "Tell me the capital of France", "correct": True}
    assert service.http.post("/v1/feedback", json=near).status_code == 200
    assert redis_client.hget(entry, "fb_right") == b"1"  # a report, inside the reach
    assert redis_client.hget(entry, "vf_radius") is None  # nor is it a check
    assert redis_client.hget(entry, "au_right") is None
    assert not redis_client.exists(keys.audit_key("default"))  # no evidence for the bound
    # plenty of evidence, from elsewhere: the vouched group and the bands up to 0.35 open
    evidence = {f"evidence:{VOUCHED}": 150, "evidence:<0.35": 1000}
    redis_client.hset(keys.audit_key("default"), mapping=evidence)
    wait_until(
        lambda: service.query(near["prompt"], cache="only").json()["status"] == "HIT", 10,
        message="the bound's evidence read",
    )  # fmt: skip
    other = service.query("What is the population of France?", cache="only").json()
    assert 0.35 < other["distance"] < service.settings.learn_radius  # inside the reach
    assert other["status"] == "MISS"  # no check found the entry right that far out


@pytest.mark.parametrize("loose", ["yes", "true", 1, 0, None])
def test_a_report_says_right_or_wrong_as_a_json_boolean(
    service: CacheService, loose: object
) -> None:
    entry_id = service.query("What is the capital of France?").json()["entry_id"]
    report = {"entry_id": entry_id, "prompt": "Tell me the capital of France", "correct": loose}
    refused = service.http.post("/v1/feedback", json=report)
    assert refused.status_code == 422, refused.text
    assert service.http.post("/v1/feedback", json={**report, "correct": True}).status_code == 200


FRENCH = {
    "france": ["Paris est la capitale de la France, sur la Seine, depuis des siècles.",
               "La capitale de la France est Paris, une ville au bord de la Seine."],
}  # fmt: skip
IN_FRENCH = "Answer in French."


def under_system_prompt(api: str, question: str, system: str) -> tuple[str, dict[str, Any]]:
    """A request of ``api`` asking ``question`` under ``system``: its path and body."""
    if api == "messages":
        turns = [{"role": "user", "content": question}]
        return "/v1/messages", {"model": "meaning", "system": system, "messages": turns,
                                "max_tokens": 200}  # fmt: skip
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return "/v1/chat/completions", {"model": "meaning", "messages": messages, "temperature": 0}


@pytest.mark.parametrize(
    ("api", "streamed"), [("chat", False), ("chat", True), ("messages", False)]
)
def test_an_audit_replays_the_request_that_was_served(
    start_service: Callable[..., CacheService], api: str, streamed: bool
) -> None:
    """A HIT served under the system prompt "Answer in French." is audited by asking that
    request again (system prompt, model, parameters), not the bare question: the English
    answer to the bare question differs from the French one served, and the audit would
    count the right HIT wrong and narrow its entry."""
    french = MeaningUpstream.topics(FRENCH)
    with MeaningUpstream(MeaningUpstream.topics(ANSWERS), instructed={IN_FRENCH: french}) as up:
        service = audited(start_service, up)
        path, body = under_system_prompt(api, "What is the capital of France?", IN_FRENCH)
        assert service.http.post(path, json=body).headers["x-cache"] == "MISS"
        paraphrase = "Tell me the capital of France"
        path, asked = under_system_prompt(api, paraphrase, IN_FRENCH)
        hit = service.http.post(path, json={**asked, "stream": streamed})
        assert hit.status_code == 200 and hit.headers["x-cache"] == "HIT"
        wait_until(lambda: rate_of(service)["audits"] == 1, 15, message="the audit is counted")
        assert rate_of(service)["wrong"] == 0
        replayed = up.bodies[-1]
        assert replayed["messages"] == [{"role": "system", "content": IN_FRENCH},
                                        {"role": "user", "content": paraphrase}]  # fmt: skip
        assert replayed["model"] == "meaning" and "stream" not in replayed
        if api == "chat":
            assert replayed["temperature"] == 0
        again = service.http.post(path, json=asked)  # the entry was not narrowed
        assert again.headers["x-cache"] == "HIT"


def test_an_audit_asks_in_the_api_of_the_request(
    start_service: Callable[..., CacheService], upstream: FakeUpstream
) -> None:
    """A Responses HIT is audited through the Responses API, with the request's own body."""
    service = start_service(
        llm="openai", openai_base_url=upstream.base_url, openai_api_key="sk-test",
        openai_model="fake-model", llm_max_retries=0, audit_rate=1.0, audit_max_per_s=100,
    )  # fmt: skip
    body = {"model": "fake-model", "instructions": IN_FRENCH, "temperature": 0,
            "input": "What is the capital of France?"}  # fmt: skip
    assert service.http.post("/v1/responses", json=body).headers["x-cache"] == "MISS"
    asked = {**body, "input": "Tell me the capital of France"}
    assert service.http.post("/v1/responses", json=asked).headers["x-cache"] == "HIT"
    wait_until(lambda: len(upstream.requests) == 2, 15, message="the audit asked")
    assert upstream.requests[1] == {**asked, "stream": False}


def test_a_withheld_candidate_is_compared_with_the_answer_to_its_own_request(
    start_service: Callable[..., CacheService],
) -> None:
    """Under a bound with no evidence yet, a chat paraphrase under "Answer in French." is a
    MISS; the candidate it withheld is compared with that MISS's own answer (in French), not
    with an answer to the bare question, and is found right."""
    french = MeaningUpstream.topics(FRENCH)
    with MeaningUpstream(MeaningUpstream.topics(ANSWERS), instructed={IN_FRENCH: french}) as up:
        service = audited(start_service, up, audit_rate=0.0, max_wrong_rate=0.05)
        path, body = under_system_prompt("chat", "What is the capital of France?", IN_FRENCH)
        assert service.http.post(path, json=body).headers["x-cache"] == "MISS"
        path, asked = under_system_prompt("chat", "Tell me the capital of France", IN_FRENCH)
        withheld = service.http.post(path, json=asked)
        assert withheld.headers["x-cache"] == "MISS"
        wait_until(lambda: rate_of(service)["bound_evidence"], 15, message="compared")
        [evidence] = rate_of(service)["bound_evidence"].values()
        assert (evidence["audits"], evidence["wrong"]) == (1, 0)
        assert len(up.bodies) == 2  # the two MISSes' calls, nothing more
