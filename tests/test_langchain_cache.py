"""Dyna-Cache as LangChain's LLM cache, with LangChain's own fake chat model: a MISS calls
the model, a paraphrase is a HIT that does not, another model (or another conversation) is a
MISS, and what LangChain stored comes back as it was."""

from collections.abc import Iterator

import pytest
import redis
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation

from devtools.redis_cluster import EmbeddedCluster
from dyna_cache.langchain import DynaCacheLLMCache, model_scope, question_and_context
from service.embedded_redis import EmbeddedRedis
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


def test_a_chat_prompt_is_looked_up_by_its_last_message() -> None:
    from langchain_core.load import dumps

    prompt = dumps([SystemMessage("Be brief."), HumanMessage("What is the capital of France?")])
    question, context = question_and_context(prompt)
    assert question == "What is the capital of France?"
    assert context is not None and context.startswith("messages:")
    assert question_and_context(dumps([HumanMessage("Hi there")])) == ("Hi there", None)
    assert question_and_context("plain text prompt") == ("plain text prompt", None)
    assert question_and_context('["not", "messages"]') == ('["not", "messages"]', None)
