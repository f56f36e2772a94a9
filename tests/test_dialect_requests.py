"""The proxy's strict request models (``service/proxy/requests.py``) checked against the
official SDKs' own request types: every field a model types is one the SDK sends, with a
type the SDK gives it, and the fields the SDK requires are required here too."""

import types
import typing
from typing import Any

import pytest
from anthropic.types import message_create_params
from openai.types.chat import completion_create_params
from openai.types.responses import response_create_params
from pydantic import BaseModel

from service.proxy.requests import ChatCompletionRequest, MessagesRequest, ResponsesRequest

# fields a model types that this SDK's types do not list, and why
NOT_IN_SDK: dict[type[BaseModel], set[str]] = {
    # Anthropic's API takes temperature; the installed SDK's TypedDict no longer lists it
    MessagesRequest: {"temperature"},
}
CASES: list[tuple[type[BaseModel], Any]] = [
    (ChatCompletionRequest, completion_create_params.CompletionCreateParamsStreaming),
    (ResponsesRequest, response_create_params.ResponseCreateParamsStreaming),
    (MessagesRequest, message_create_params.MessageCreateParamsStreaming),
]


def leaves(annotation: Any) -> set[Any]:
    """The plain types an annotation allows (through Union, Optional, Required, aliases;
    a Literal's values as their types)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return {type(value) for value in typing.get_args(annotation)}
    if origin is None:
        return {annotation}
    if origin in (typing.Union, types.UnionType, typing.Annotated) or "Required" in str(origin):
        return set().union(*(leaves(arg) for arg in typing.get_args(annotation)))
    return {origin}


@pytest.mark.parametrize(("model", "params"), CASES, ids=[m.__name__ for m, _ in CASES])
def test_each_typed_field_is_the_sdks(model: type[BaseModel], params: Any) -> None:
    sdk = typing.get_type_hints(params, include_extras=True)
    for name, field in model.model_fields.items():
        if name in NOT_IN_SDK.get(model, set()):
            continue
        assert name in sdk, f"{model.__name__}.{name} is not a field of {params.__name__}"
        ours = leaves(field.annotation) & {bool, int, float, str}
        allowed = leaves(sdk[name])
        for scalar in ours:  # a number the SDK sends as int or float is fine for a float
            fits = scalar in allowed or (scalar is float and int in allowed)
            assert fits, f"{model.__name__}.{name}: {scalar.__name__} vs {sdk[name]}"
        required = "Required[" in str(sdk[name]) and "NotRequired" not in str(sdk[name])
        if required and name != "stream":  # the streaming variant requires stream: True
            assert field.is_required(), f"{model.__name__}.{name} is required by the SDK"
