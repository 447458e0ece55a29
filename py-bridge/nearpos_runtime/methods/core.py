"""Built-ins: echo, sleep, release, bytes_in, bytes_out."""

from __future__ import annotations

import functools
import time
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..context import CallContext
from ..errors import InvalidParams
from ..protocol.tensors import DTYPES, TensorField
from ..registry import method


@method(
    "echo", inline=True, description="Returns its params unchanged (tensors sent back as received)."
)
def echo(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return params


class SleepParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, description="how long to sleep (s)")
    tick: float = Field(0.05, gt=0, description="interval between tick events (s)")


@method("sleep", params=SleepParams, description="Sleeps, emitting tick events; cancellable.")
def sleep(ctx: CallContext, params: SleepParams) -> dict[str, float]:
    start = time.monotonic()
    deadline = start + params.seconds
    i = 0
    while True:
        ctx.check_cancelled()
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ctx.sleep(min(params.tick, left))
        ctx.emit("tick", {"i": i})
        i += 1
    return {"slept": time.monotonic() - start}


class ReleaseParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="handle returned by the method that created the object")


@method("release", params=ReleaseParams, inline=True, description="Frees an object-store handle.")
def release(ctx: CallContext, params: ReleaseParams) -> dict[str, bool]:
    return {"released": ctx.objects.delete(params.id)}


class BytesInParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tensor: TensorField


@method(
    "bytes_in",
    params=BytesInParams,
    inline=True,
    description="Receives a tensor; returns its size.",
)
def bytes_in(ctx: CallContext, params: BytesInParams) -> dict[str, int]:
    t = params.tensor
    return {"nbytes": t.numel() * t.element_size()}


DtypeName = Literal[tuple(DTYPES)]  # type: ignore[valid-type]


class BytesOutParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nbytes: int = Field(ge=0, description="size of the tensor to send back (bytes)")
    dtype: DtypeName = Field("float32", description="dtype of the tensor")  # type: ignore[valid-type]


@method(
    "bytes_out",
    params=BytesOutParams,
    inline=True,
    description="Sends back a tensor of nbytes bytes.",
)
def bytes_out(ctx: CallContext, params: BytesOutParams) -> torch.Tensor:
    dtype = DTYPES[params.dtype]
    itemsize = torch.empty((), dtype=dtype).element_size()
    if params.nbytes % itemsize:
        raise InvalidParams(
            f"params.nbytes: {params.nbytes} is not a multiple of {params.dtype}'s "
            f"{itemsize}-byte element"
        )
    return _payload(params.nbytes // itemsize, params.dtype)


@functools.lru_cache(maxsize=2)
def _payload(numel: int, dtype: str) -> torch.Tensor:
    # Reused across calls so a throughput measurement times the transfer, not the
    # allocation (first-touch page faults on 64 MiB cost about as much as sending it).
    # Safe to share: frames are sent read-only and never modified after sending.
    return torch.zeros(numel, dtype=DTYPES[dtype])
