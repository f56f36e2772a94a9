"""The runtime as a typed FastAPI dependency: handlers declare what they use."""

from typing import Annotated

from fastapi import Depends, Request

from service.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
