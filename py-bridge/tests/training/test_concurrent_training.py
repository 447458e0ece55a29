"""Trainings in one runtime give the same result whatever else runs: they run one at a time,
in arrival order; a queued run says so and can be cancelled while it waits (real runtime
process, real torch)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import torch

from nearpos_runtime.client import TERMINAL, CallOutcome, Client
from nearpos_runtime.training.trainer import RunQueue, TrainingError

# Dropout draws from torch's generator at every step: the run that showed the problem.
DROPOUT = {
    "data": {"kind": "synthetic", "classes": 4, "modes_per_class": 2, "dim": 16, "per_mode": 30},
    "model": {"kind": "mlp", "hidden": [64], "embedding_dim": 16, "dropout": 0.3},
    "loss": {"name": "triplet", "config": {"margin": 0.2}},
    "batch": {"classes": 4, "per_class": 4},
    "optimizer": {"kind": "adam", "lr": 0.01},
    "steps": 60,
    "eval": {"ks": [1, 2], "nmi": False},
    "device": "cpu",
    "seed": 11,
}
OTHER = {**DROPOUT, "seed": 5, "model": {**DROPOUT["model"], "dropout": 0.5}, "threads": 1}


def finish(client: Client, request_id: str) -> tuple[str, dict[str, Any], list[dict]]:
    outcome = client.wait(request_id, timeout=300)
    assert outcome.terminal is not None
    events = [e.content for e in outcome.events]
    return outcome.terminal.msg_type, outcome.terminal.content, events


def wait_for_event(client: Client, request_id: str, kind: str, timeout: float = 60) -> None:
    """Read messages (keeping them for client.wait) until ``request_id`` emits ``kind``."""
    deadline = time.monotonic() + timeout
    while not any(e.content["type"] == kind for e in client.pending[request_id].events):
        reply = client.recv("request", max(0.1, deadline - time.monotonic()))
        parent = reply.header["parent_id"]
        target = client.pending.setdefault(parent, CallOutcome(parent))
        if reply.msg_type in TERMINAL:
            target.terminal = reply
        else:
            target.events.append(reply)


def test_a_seeded_run_with_dropout_is_the_same_alone_and_alongside_another(
    client: Client,
) -> None:
    alone = client.call("train", DROPOUT, timeout=300)
    other_alone = client.call("train", OTHER, timeout=300)
    # Both at once, the other one first.
    first = client.submit("train", OTHER)
    second = client.submit("train", DROPOUT)
    kind_b, end_b, events_b = finish(client, first)
    kind_a, end_a, events_a = finish(client, second)
    assert kind_a == kind_b == "result", (end_a, end_b)
    together, other_together = end_a["value"], end_b["value"]
    assert together["losses"] == alone["losses"]
    assert together["metrics"] == alone["metrics"]
    assert other_together["metrics"] == other_alone["metrics"]
    # One of them (whichever reached the queue second) waited for the other and said so.
    queued = [[e["data"] for e in ev if e["type"] == "queued"] for ev in (events_a, events_b)]
    assert sorted(queued, key=len) == [[], [{"ahead": 1}]]
    waited = [together["queued_s"], other_together["queued_s"]]
    assert min(waited) == 0 < max(waited) and alone["queued_s"] == 0
    for r in (alone, other_alone, together, other_together):
        client.call("release", {"id": r["model"]})


def test_mining_with_a_random_sampler_meanwhile_changes_nothing(client: Client) -> None:
    alone = client.call("train", DROPOUT, timeout=300)
    run = client.submit("train", DROPOUT)
    wait_for_event(client, run, "step")
    gen = torch.Generator().manual_seed(0)
    mine = {
        "sampler": "random-positive",
        "config": {"negatives": "distance-weighted"},  # random too; seed null
        "embeddings": torch.randn(64, 8, generator=gen),
        "labels": torch.arange(64) % 4,
    }
    calls = [client.submit("mine", mine) for _ in range(20)]
    for c in calls:
        assert finish(client, c)[0] == "result"
    kind, end, _ = finish(client, run)
    assert kind == "result"
    assert end["value"]["losses"] == alone["losses"]
    for r in (alone, end["value"]):
        client.call("release", {"id": r["model"]})


def test_a_queued_run_can_be_cancelled_while_it_waits(client: Client) -> None:
    long_run = client.submit("train", {**DROPOUT, "steps": 1_000_000, "eval_every": 0})
    wait_for_event(client, long_run, "step")  # it holds the turn
    waiting = client.submit("train", DROPOUT)
    wait_for_event(client, waiting, "queued")
    t0 = time.monotonic()
    assert client.cancel(waiting)
    kind, _, _ = finish(client, waiting)
    assert kind == "cancelled" and time.monotonic() - t0 < 5
    assert client.cancel(long_run)
    kind, _, _ = finish(client, long_run)
    assert kind == "cancelled"
    # The queue is empty again: the next run starts at once.
    kind, end, events = finish(client, client.submit("train", {**DROPOUT, "steps": 2}))
    assert kind == "result" and end["value"]["queued_s"] == 0
    assert not [e for e in events if e["type"] == "queued"]


def test_run_queue_is_first_come_first_served() -> None:
    q = RunQueue(interval=0.01)
    order: list[str] = []
    seen: dict[str, list[int]] = {}
    first = object()
    assert q.wait_turn(first, lambda n: None, lambda: None) == 0.0

    def run(name: str) -> None:
        ticket = object()
        seen[name] = []
        q.wait_turn(ticket, seen[name].append, lambda: None)
        order.append(name)
        q.leave(ticket)

    threads = []
    for name in ("b", "c", "d"):
        t = threading.Thread(target=run, args=(name,))
        t.start()
        threads.append(t)
        while len(q) < len(threads) + 1:  # each one queued before the next arrives
            time.sleep(0.005)
    q.leave(first)
    for t in threads:
        t.join(10)
    assert order == ["b", "c", "d"]
    # Each reported its place on arrival, then fewer as runs ahead left (a place may be
    # skipped when two leave between its checks).
    assert [seen[n][0] for n in "bcd"] == [1, 2, 3]
    assert all(v == sorted(v, reverse=True) and len(set(v)) == len(v) for v in seen.values())
    assert len(q) == 0


def test_run_queue_cancel_while_waiting_leaves_the_queue() -> None:
    q = RunQueue(interval=0.01)
    head = object()
    q.wait_turn(head, lambda n: None, lambda: None)

    class Stop(Exception):
        pass

    def poll() -> None:
        raise Stop

    caught: list[BaseException] = []

    def waiter() -> None:
        try:
            q.wait_turn(object(), lambda n: None, poll)
        except Stop as exc:
            caught.append(exc)

    t = threading.Thread(target=waiter)
    t.start()
    t.join(10)
    assert len(caught) == 1 and len(q) == 1
    with pytest.raises(TrainingError, match="from its own thread"):
        q.wait_turn(object(), lambda n: None, lambda: None)
    q.leave(head)
    assert q.wait_turn(object(), lambda n: None, lambda: None) == 0.0


def test_threads_setting_is_restored_after_a_run() -> None:
    from nearpos_runtime.training import TrainConfig, Trainer

    before = torch.get_num_threads()
    cfg = TrainConfig.model_validate({**DROPOUT, "steps": 2, "threads": 1})
    Trainer(cfg).run()
    assert torch.get_num_threads() == before
