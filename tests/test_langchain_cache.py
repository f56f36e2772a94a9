"""Dyna-Cache as LangChain's LLM cache, with LangChain's own fake chat model: a MISS calls
the model, a paraphrase is a HIT that does not, another model (or another conversation) is a
MISS, and what LangChain stored comes back as it was. A chat is keyed as the HTTP proxy keys
it (roles, tool calls, pictures), and what cannot be keyed passes through, counted."""

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, Generation

from devtools.redis_cluster import EmbeddedCluster
from dyna_cache import RedisUnreachable
from dyna_cache.langchain import DynaCacheLLMCache, chat_of, model_scope
from service.embedded_redis import EmbeddedRedis, free_port
from tests.conftest import make_settings


@pytest.fixture
def llm_cache(
    redis_server: EmbeddedRedis | EmbeddedCluster, redis_client: redis.Redis
) -> Iterator[DynaCacheLLMCache]:
    """A LangChain cache on the session's Redis, emptied first (``redis_client``)."""
    cache = DynaCacheLLMCache(make_settings(redis_server.url))
    yield cache
    cache.close()


def test_a_miss_calls_the_model_and_a_paraphrase_does_not(llm_cache: DynaCacheLLMCache) -> None:
    model = FakeListChatModel(responses=["Paris.", "a second call"], cache=llm_cache)
    assert model.invoke("What is the capital of France?").content == "Paris."
    assert model.i == 1  # the model was called
    assert model.invoke("Tell me the capital of France").content == "Paris."
    assert model.i == 1  # served by the cache
    # another model (its parameters are in llm_string) never shares the answer
    other = FakeListChatModel(responses=["Lyon?"], cache=llm_cache)
    assert other.invoke("Tell me the capital of France").content == "Lyon?"
    # the same question in another conversation (a system prompt before it) is a MISS
    model.invoke([SystemMessage("Answer in French."), HumanMessage("What is France's capital?")])
    assert model.i == 0  # FakeListChatModel wraps round: its second answer was called for


async def test_the_async_path(llm_cache: DynaCacheLLMCache) -> None:
    model = FakeListChatModel(responses=["Shakespeare.", "a second call"], cache=llm_cache)
    assert (await model.ainvoke("Who wrote Hamlet?")).content == "Shakespeare."
    assert (await model.ainvoke("Who is the author of Hamlet?")).content == "Shakespeare."
    assert model.i == 1
    await llm_cache.aclear()
    assert await llm_cache.alookup("Who wrote Hamlet?", "any") is None


def test_generations_round_trip_whole(llm_cache: DynaCacheLLMCache) -> None:
    message = AIMessage(
        content="Paris.", additional_kwargs={"refusal": None},
        response_metadata={"model_name": "m", "finish_reason": "stop"},
        usage_metadata={"input_tokens": 7, "output_tokens": 2, "total_tokens": 9},
    )  # fmt: skip
    stored = [ChatGeneration(message=message, generation_info={"logprobs": None})]
    llm_string = "model=m temperature=0"
    llm_cache.update("What is the capital of France?", llm_string, stored)
    found = llm_cache.lookup("Tell me the capital of France", llm_string)
    assert found == stored
    assert llm_cache.lookup("Tell me the capital of France", "model=m temperature=1") is None
    # an entry stored another way (the library, HTTP) in the same scope: its text
    llm_cache.cache.store("How tall is Everest?", "8,849 m", model=model_scope(llm_string))
    assert llm_cache.lookup("What is Everest's height?", llm_string) == [Generation(text="8,849 m")]


def test_a_prompt_reads_as_the_chat_the_proxy_keys() -> None:
    from langchain_core.load import dumps

    prompt = dumps([SystemMessage("Be brief."), HumanMessage("What is the capital of France?")])
    model = model_scope("m")
    assert chat_of(prompt, "m") == {
        "model": model,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
    }
    # a text model's prompt is one user message, whatever it looks like
    for text in ("plain text prompt", '["not", "messages"]', "[{broken"):
        assert chat_of(text, "m") == {
            "model": model,
            "messages": [{"role": "user", "content": text}],
        }
    # serialised objects that are not messages are not read (not cached)
    assert chat_of(dumps([Generation(text="x")]), "m") is None


# -- what a chat is keyed under: what the HTTP proxy keys (service/keying/chat_key.py) --------

CAT = "data:image/png;base64," + "Y2F0" * 8
DOG = "data:image/png;base64," + "ZG9n" * 8


# a question with a 240 kB picture, as LangChain's standard content blocks give it
LARGE_IMAGE = [
    {"type": "text", "text": "Describe it."},
    {"type": "image", "source_type": "base64", "mime_type": "image/png", "data": "QUJD" * 60_000},
]


def _with_image(text: str, url: str) -> HumanMessage:
    return HumanMessage(
        content=[{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]
    )


def _weather_chat(city: str, call_id: str = "call_1") -> list[BaseMessage]:
    """A conversation whose turns differ only in the arguments of the assistant's tool call
    (and its id, random per call)."""
    return [
        HumanMessage("What is the weather where I am going?"),
        AIMessage("", tool_calls=[{"name": "weather", "args": {"city": city}, "id": call_id}]),
        ToolMessage("Sunny, 31 degrees.", tool_call_id=call_id),
        HumanMessage("Should I pack an umbrella?"),
    ]


def _bypasses(llm_cache: DynaCacheLLMCache) -> float:
    """This process's bypasses (its in-memory counter: ``stats()`` reads Redis, which a
    flush in flight may not have reached yet)."""
    registry = llm_cache.cache.cache._running().telemetry.metrics.registry
    labels = {"namespace": "default", "outcome": "bypass"}
    return registry.get_sample_value("dynacache_requests_total", labels) or 0.0


def test_a_question_about_another_picture_is_never_served_its_answer(
    llm_cache: DynaCacheLLMCache,
) -> None:
    model = FakeListChatModel(responses=["A cat.", "A dog."], cache=llm_cache)
    assert model.invoke([_with_image("What animal is this?", CAT)]).content == "A cat."
    assert model.invoke([_with_image("What animal is this?", DOG)]).content == "A dog."
    # a question with a picture is not cached at all (as over HTTP): counted as a bypass
    assert _bypasses(llm_cache) == 2


def test_tool_call_arguments_roles_and_a_final_system_message_are_keyed(
    llm_cache: DynaCacheLLMCache,
) -> None:
    model = FakeListChatModel(responses=["No, Paris is dry.", "Yes, Cairo?"], cache=llm_cache)
    assert model.invoke(_weather_chat("Paris")).content == "No, Paris is dry."
    assert model.invoke(_weather_chat("Cairo")).content == "Yes, Cairo?"  # not Paris's
    # its own answer, whatever the call's id
    assert model.invoke(_weather_chat("Paris", "call_9")).content == "No, Paris is dry."
    jokes = FakeListChatModel(responses=["A joke.", "A system's answer."], cache=llm_cache)
    assert jokes.invoke([HumanMessage("Tell me a joke.")]).content == "A joke."
    # the same text said by the system, last: not the user's question
    assert jokes.invoke([SystemMessage("Tell me a joke.")]).content == "A system's answer."
    said_after = [HumanMessage("Tell me a joke."), SystemMessage("Answer in French.")]
    assert jokes.invoke(said_after).content == "A joke."  # wraps round: a call, not a HIT
    assert jokes.i == 1


@pytest.mark.parametrize(
    "prompt",
    [
        pytest.param("Summarise this: " + "lorem ipsum " * 3_400, id="40000-characters"),
        pytest.param("   \n\t ", id="whitespace"),
        pytest.param("\u200b\u200b", id="zero-width"),
        pytest.param(LARGE_IMAGE, id="base64-image"),
    ],
)
def test_what_cannot_be_keyed_passes_through_and_is_counted(
    llm_cache: DynaCacheLLMCache, prompt: str | list[str | dict[str, Any]]
) -> None:
    model = FakeListChatModel(responses=["first call", "second call"], cache=llm_cache)
    assert model.invoke([HumanMessage(content=prompt)]).content == "first call"
    assert model.invoke([HumanMessage(content=prompt)]).content == "second call"
    assert _bypasses(llm_cache) == 2


def test_a_cache_whose_redis_does_not_answer_never_breaks_the_call(
    redis_server: EmbeddedRedis | EmbeddedCluster,
) -> None:
    down = f"redis://127.0.0.1:{free_port()}"
    with pytest.raises(RedisUnreachable):
        DynaCacheLLMCache(make_settings(down))
    cache = DynaCacheLLMCache(make_settings(down), start_degraded=True)
    try:
        model = FakeListChatModel(responses=["first call", "second call"], cache=cache)
        assert model.invoke("What is the capital of France?").content == "first call"
        assert model.invoke("What is the capital of France?").content == "second call"
    finally:
        cache.close()
