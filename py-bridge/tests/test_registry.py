"""Registry, params validation messages, object store, call context."""

from __future__ import annotations

import threading

import pytest
import torch
from pydantic import BaseModel

from nearpos_runtime import methods  # noqa: F401  (registers the built-ins)
from nearpos_runtime.context import CallContext
from nearpos_runtime.errors import Cancelled, InvalidParams, UnknownHandle, UnknownMethod
from nearpos_runtime.objects import ObjectStore
from nearpos_runtime.protocol.tensors import TensorField
from nearpos_runtime.registry import get_method, method


class P(BaseModel):
    t: TensorField
    mode: str = "a"


def test_register_validate_and_duplicates() -> None:
    @method("test.twice", params=P, description="d")
    def f(ctx: CallContext, params: P) -> int:
        return 1

    spec = get_method("test.twice")
    assert spec.params_schema()["properties"]["t"]["required"] == ["$tensor"]
    assert torch.equal(spec.validate({"t": torch.ones(1)}).t, torch.ones(1))
    with pytest.raises(InvalidParams, match=r"params.t: .*expected a tensor"):
        spec.validate({"t": [1.0]})
    with pytest.raises(InvalidParams, match="params.t: Field required"):
        spec.validate({})
    with pytest.raises(ValueError, match="registered twice"):
        method("test.twice")(lambda ctx, p: 2)
    with pytest.raises(UnknownMethod, match="known: .*echo"):
        get_method("test.none")


def test_object_store() -> None:
    store = ObjectStore()
    handle = store.put(torch.nn.Linear(2, 2), "model")
    assert handle.startswith("model-") and store.kind(handle) == "model"
    assert isinstance(store.get(handle, "model"), torch.nn.Linear)
    with pytest.raises(UnknownHandle, match="is a model, not a dataset"):
        store.get(handle, "dataset")
    assert store.delete(handle) is True and store.delete(handle) is False
    with pytest.raises(UnknownHandle, match="unknown model handle"):
        store.get(handle, "model")


def test_context_events_and_cancel() -> None:
    sent: list[tuple[str, dict]] = []
    cancel = threading.Event()
    ctx = CallContext("r" * 32, ObjectStore(), lambda t, d: sent.append((t, d)), cancel, "m")
    ctx.warn("careful")
    assert sent == [("warning", {"message": "careful"})]
    ctx.check_cancelled()
    cancel.set()
    assert ctx.cancelled
    with pytest.raises(Cancelled):
        ctx.check_cancelled()
    with pytest.raises(Cancelled):
        ctx.sleep(10)
