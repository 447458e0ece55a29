"""Real results and events of the methods validate against their models (results.py), so
the result schemas, and the TypeScript types generated from them, cannot drift from what
the methods return."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest
import torch

from nearpos_runtime import methods, results
from nearpos_runtime.client import CallOutcome, Client
from nearpos_runtime.info import schemas
from nearpos_runtime.registry import list_methods

DATA = {
    "kind": "synthetic", "classes": 6, "modes_per_class": 2, "dim": 8, "per_mode": 5,
    "folds": 2, "fold": 0,
}
TRAIN = {
    "data": DATA,
    "model": {"kind": "mlp", "hidden": [16], "embedding_dim": 8},
    "sampler": {"name": "nearest-positive", "config": {}},
    "batch": {"classes": 3, "per_class": 2},  # per_class 2: a warning event
    "steps": 6,
    "eval_every": 3,
    "log_every": 1,
    "eval": {"ks": [1], "nmi": False},
    "select_best": True,
    "select_on": "coarse.map@r",
}


def check_call(outcome: CallOutcome, method: str) -> dict[str, Any]:
    """Validate every event and the result of ``outcome`` against the models of ``method``;
    the event types seen."""
    returns = results.RESULTS[method]
    assert outcome.terminal is not None
    assert outcome.terminal.msg_type == "result", outcome.terminal.content
    for ev in outcome.events:
        kind = ev.content["type"]
        assert kind in returns.events, f"{method} emitted an undeclared {kind!r} event"
        results.EVENTS[kind].model_validate(ev.content["data"])
    value = outcome.terminal.content["value"]
    returns.result.model_validate(value)
    return {"types": {ev.content["type"] for ev in outcome.events}, "value": value}


def call(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return check_call(client.wait(client.submit(method, params), 120), method)


def runtime_methods() -> set[str]:
    """The methods the runtime itself registers (other tests register throwaway ones)."""
    assert methods.__name__  # imported for its registrations
    return {m.name for m in list_methods() if m.func.__module__.startswith("nearpos_runtime.")}


def test_every_method_declares_its_result_and_events() -> None:
    declared = set(results.RESULTS)
    registered = runtime_methods()
    assert {"train", "embed", "evaluate", "mine", "loss"} <= registered
    assert registered <= declared, f"no result model for {sorted(registered - declared)}"
    for m in schemas()["methods"]:
        if m["name"] in registered:
            assert m["result_schema"]["title"], m["name"]
            assert "warning" in m["event_schemas"]


def wait_for_event(client: Client, request_id: str, kind: str) -> None:
    """Read replies (kept for ``client.wait``) until ``request_id`` emitted a ``kind`` event."""
    outcome = client.pending[request_id]
    while not any(ev.content["type"] == kind for ev in outcome.events):
        reply = client.recv("request")
        parent = reply.header["parent_id"]
        target = client.pending.setdefault(parent, CallOutcome(parent))
        if reply.msg_type in ("result", "error", "cancelled"):
            target.terminal = reply
        else:
            target.events.append(reply)
        assert outcome.terminal is None, outcome.terminal.content


def test_train_and_checkpoints(client: Client, tmp_path: Path) -> None:
    params = {**TRAIN, "checkpoint": {"dir": str(tmp_path), "every": 3}}
    blocker = client.submit("train", {**TRAIN, "steps": 1_000_000, "eval_every": 0})
    wait_for_event(client, blocker, "step")  # running: the next training waits for it
    first = client.submit("train", params)
    wait_for_event(client, first, "queued")
    client.cancel(blocker)
    assert client.wait(blocker, 120).terminal.msg_type == "cancelled"
    done = check_call(client.wait(first, 120), "train")
    assert done["types"] >= {"queued", "step", "epoch", "eval", "checkpoint", "warning"}
    value = done["value"]
    assert value["best_step"] in (3, 6) and value["best_val_metrics"] is not None
    assert "val_metrics" in value["history"][0]
    path = str(tmp_path / "m.pt")
    saved = call(client, "checkpoint_save", {"model": value["model"], "path": path})
    loaded = call(client, "checkpoint_load", {"path": saved["value"]["path"]})
    call(client, "release", {"id": loaded["value"]["model"]})

    embedded = call(client, "embed", {"model": value["model"], "data": DATA})["value"]
    assert "fine_labels" in embedded
    evaluated = call(
        client, "evaluate", {"model": value["model"], "data": DATA, "projection": "pca"}
    )
    assert evaluated["types"] == {"eval"} and "projection" in evaluated["value"]
    given = call(
        client, "evaluate",
        {"embeddings": embedded["embeddings"], "labels": embedded["labels"].int(), "nmi": False},
    )["value"]
    assert "fine" not in given["metrics"] and "fine_labels" not in given
    call(client, "release", {"id": value["model"]})


def test_mine_and_loss(client: Client) -> None:
    emb = torch.randn(12, 4)
    labels = torch.arange(3).repeat_interleave(4)
    mined = call(
        client, "mine",
        {"sampler": "nearest-positive", "embeddings": emb, "labels": labels,
         "ref_embeddings": emb[:6], "ref_labels": labels[:6]},
    )["value"]
    assert mined["indices"]["anchors"].numel() > 0
    loss = call(
        client, "loss",
        {"loss": "triplet", "sampler": "nearest-positive", "embeddings": emb, "labels": labels},
    )["value"]
    assert loss["value"] >= 0


def test_models_refuse_what_the_methods_do_not_return() -> None:
    # Each check above can fail: an unknown field, a wrong dtype, a missing field.
    ok = {"value": 1.0, "diagnostics": {}}
    results.LossResult.model_validate(ok)
    with pytest.raises(pydantic.ValidationError):
        results.LossResult.model_validate({**ok, "extra": 1})
    with pytest.raises(pydantic.ValidationError):
        results.EmbedResult.model_validate(
            {"embeddings": torch.zeros(2, 2), "labels": torch.zeros(2)}
        )
    with pytest.raises(pydantic.ValidationError):
        results.TrainResult.model_validate({"model": "m"})
