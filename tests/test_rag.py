"""RAG normalisation: the question is embedded, the context blocks join the scope."""

import time
from collections.abc import Callable
from typing import Any

import pytest

from service.keying.rag import InvalidPattern, RagSplitter
from tests.helpers import CacheService

DOCS_A = "Paris is the capital and largest city of France. It lies on the Seine."
DOCS_B = "Canberra is the capital of Australia. It was chosen as a compromise."
QUESTION = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"

# Each default layout: (name, how a question and its documents are written)
LAYOUTS: dict[str, Callable[[str, str], str]] = {
    "context-question": lambda q, d: f"Context:\n{d}\n\nQuestion: {q}",
    "question-context": lambda q, d: f"Question: {q}\nContext: {d}",
    "context tag": lambda q, d: f"<context>\n{d}\n</context>\nAnswer briefly. {q}",
    "document tags": lambda q, d: (
        f'<document id="1">{d}</document>\n<document id="2">Rivers flow.</document>\n{q}'
    ),
    "documents tag": lambda q, d: f"<documents><document>{d}</document></documents>\nQuestion: {q}",
    "fenced context": lambda q, d: f"```context\n{d}\n```\n{q}",
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_default_pattern_splits_question_from_context(layout: str) -> None:
    split = RagSplitter().split(LAYOUTS[layout](QUESTION, DOCS_A))
    assert QUESTION in split.question
    assert "Seine" not in split.question
    assert any("Seine" in context for context in split.contexts)


def test_context_whitespace_and_order_do_not_matter() -> None:
    splitter = RagSplitter()
    one = splitter.split(f"<document>{DOCS_A}</document><document>{DOCS_B}</document> {QUESTION}")
    two = splitter.split(
        f"<document>{DOCS_B}</document>\n\n<document>  {DOCS_A}\n</document>\n{QUESTION}"
    )
    assert one == two


def test_plain_prompts_are_left_alone() -> None:
    for prompt in ("What is the context: of this poem?", "Question of the day: why?", QUESTION):
        assert RagSplitter().split(prompt).question == prompt
    assert RagSplitter(enabled=False).split(LAYOUTS["context tag"](QUESTION, DOCS_A)).contexts == ()


def test_documents_block_is_cut_out_whole() -> None:
    split = RagSplitter().split(LAYOUTS["documents tag"](QUESTION, DOCS_A))
    assert split.question == QUESTION
    assert split.contexts == (f"<document>{DOCS_A}</document>",)


HOSTILE = [  # each took seconds to hours with Python's backtracking re (cubic in the length)
    "context:" + " " * 31_990 + "x",
    "question:" + " " * 31_990 + "x",
    "Context: " + "a " * 15_990 + "Question:" + " " * 10,
    "<context>" * 3_500 + "x",
    "```context " * 2_900,
]


@pytest.mark.parametrize("prompt", HOSTILE, ids=range(len(HOSTILE)))
def test_every_pattern_runs_in_linear_time_at_the_maximum_prompt_size(prompt: str) -> None:
    # a bound no backtracking match of these meets (the first took 3.7 s at 1,200 chars);
    # RE2 takes milliseconds
    started = time.perf_counter()
    RagSplitter().split(prompt[:32_000])
    assert time.perf_counter() - started < 1.0


def test_hostile_prompt_does_not_stall_the_replica(service: CacheService) -> None:
    entries = [{"prompt": prompt[:32_000], "response": "x"} for prompt in HOSTILE]
    answer = service.http.post("/v1/entries", json={"entries": entries}, timeout=30)
    assert answer.status_code == 201
    assert service.query(HOSTILE[0][:32_000]).status_code == 200
    assert service.http.get("/healthz", timeout=5).status_code == 200


def test_custom_patterns_and_bad_ones() -> None:
    splitter = RagSplitter([r"(?s)\[\[(?P<context>.*?)\]\]"])
    split = splitter.split(f"[[{DOCS_A}]] {QUESTION}")
    assert (split.question, split.contexts) == (QUESTION, (DOCS_A,))
    with pytest.raises(InvalidPattern):
        RagSplitter(["(unclosed"])
    with pytest.raises(InvalidPattern):
        RagSplitter([r"no named group"])
    with pytest.raises(InvalidPattern, match="RE2"):  # backreferences could backtrack
        RagSplitter([r"(?P<context>a)(?P=context)"])


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_query_endpoint_scopes_by_documents(service: CacheService, layout: str) -> None:
    wrap = LAYOUTS[layout]
    assert service.query(wrap(QUESTION, DOCS_A)).json()["status"] == "MISS"
    hit = service.query(wrap(PARAPHRASE, DOCS_A)).json()
    assert hit["status"] == "HIT"
    assert hit["matched_prompt"].endswith(QUESTION)  # the question was stored, not the docs
    assert service.query(wrap(QUESTION, DOCS_B)).json()["status"] == "MISS"


def test_context_field_and_inline_blocks_are_one_scope(service: CacheService) -> None:
    service.query(QUESTION, context=DOCS_A)
    assert service.query(f"<context>{DOCS_A}</context> {PARAPHRASE}").json()["status"] == "HIT"


def chat(service: CacheService, messages: list[dict[str, Any]]) -> str:
    response = service.http.post("/v1/chat/completions", json={"model": "m", "messages": messages})
    assert response.status_code == 200, response.text
    return response.headers["x-cache"]


def test_documents_in_system_messages_scope_chat(service: CacheService) -> None:
    def with_system(docs: str, question: str) -> list[dict[str, Any]]:
        return [
            {"role": "system", "content": f"Answer from these documents:\n{docs}"},
            {"role": "user", "content": question},
        ]

    assert chat(service, with_system(DOCS_A, QUESTION)) == "MISS"
    assert chat(service, with_system(DOCS_A.replace(" ", "\n "), PARAPHRASE)) == "HIT"
    assert chat(service, with_system(DOCS_B, QUESTION)) == "MISS"


def test_documents_in_tool_messages_scope_chat(service: CacheService) -> None:
    def retrieved(docs: str, question: str, call_id: str) -> list[dict[str, Any]]:
        call = {"id": call_id, "type": "function",
                "function": {"name": "retrieve", "arguments": "{}"}}  # fmt: skip
        return [
            {"role": "user", "content": question},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": docs},
        ]

    assert chat(service, retrieved(DOCS_A, QUESTION, "call_1")) == "MISS"
    assert chat(service, retrieved(DOCS_A, PARAPHRASE, "call_2")) == "HIT"
    assert chat(service, retrieved(DOCS_B, QUESTION, "call_3")) == "MISS"


def test_normalisation_can_be_turned_off(start_service: Callable[..., CacheService]) -> None:
    plain = start_service(rag_normalise=False)
    wrap = LAYOUTS["context tag"]
    asked = wrap(QUESTION, DOCS_A)
    plain.query(asked)
    # not cut out, the documents make the question a prompt, which is served only as the
    # same request: another question over them is not served (embedded whole, the documents
    # dominate its vector), the same one is
    answer = plain.query(wrap("How long is the Seine river?", DOCS_A)).json()
    assert answer["status"] == "MISS"
    assert plain.query(asked).json()["status"] == "HIT"


# -- what the model does not read must match exactly -------------------------------------

PREAMBLE = " ".join(
    f"Clause {i}: the customer agreed to the terms of service, the privacy policy and the "
    "billing schedule described in the contract signed at the start of the year."
    for i in range(20)
)  # ~3,000 characters: past the model's 256 word pieces
REFUND = PREAMBLE + " Given all this, should we refund the customer?"
DELETE = PREAMBLE + " Given all this, should we permanently close the customer's account and " \
    "delete all data?"  # fmt: skip


def test_a_prompt_past_the_window_is_kept_whole_and_its_scope_is_its_own(
    service: CacheService,
) -> None:
    embedder = service.runtime.embedder.embedder
    read = embedder.seen_chars(REFUND)
    assert 500 < read < len(REFUND) - 100, "the model stops reading inside the preamble"
    splitter = service.runtime.queries.probes.splitter
    refund, delete = splitter.split(REFUND), splitter.split(DELETE)
    assert refund.question == REFUND  # embedded and stored whole; the model cuts it itself
    # what the model does not read decides nothing: a prompt is served only as itself
    assert refund.contexts == delete.contexts == ()


def test_a_long_prompt_is_not_served_for_another_that_differs_after_the_window(
    service: CacheService,
) -> None:
    stored = service.http.post(
        "/v1/entries", json={"entries": [{"prompt": REFUND, "response": "YES, refund them."}]}
    )
    assert stored.status_code == 201
    other = service.query(DELETE).json()
    assert other["status"] == "MISS", other  # before: HIT at distance 0.0, the refund answer
    same = service.query(REFUND).json()
    assert same["status"] == "HIT" and same["response"] == "YES, refund them."
    # the same words laid out otherwise (whitespace, case) are the same prompt
    relaid = REFUND.replace(". ", ".\n\n").upper()
    assert service.query(relaid).json()["status"] == "HIT"
