"""The runtime's own plumbing between threads, each against the plain thing it replaces:
the cancel flag against threading.Event, the outbox's single outstanding wake-up, the
worker pool, and the ZeroMQ loop's receive/send helpers and wake-up socket."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
import zmq

from nearpos_runtime import methods  # noqa: F401  (registers the built-ins)
from nearpos_runtime.calls import CancelFlag, Outbox
from nearpos_runtime.context import CallContext
from nearpos_runtime.errors import Cancelled
from nearpos_runtime.objects import ObjectStore
from nearpos_runtime.protocol.messages import Codec
from nearpos_runtime.protocol.wire import verify
from nearpos_runtime.server import WorkerPool
from nearpos_runtime.transports import zmq_io

KEY = os.urandom(32)


@pytest.mark.parametrize("make", [CancelFlag, threading.Event])
def test_cancel_flag_behaves_like_an_event(make: Any) -> None:
    flag = make()
    assert not flag.is_set() and flag.wait(0.01) is False
    flag.set()
    assert flag.is_set() and flag.wait(0) is True and flag.wait(10) is True

    waiting = make()
    woke: list[bool] = []
    thread = threading.Thread(target=lambda: woke.append(waiting.wait(10)))
    thread.start()
    time.sleep(0.05)  # the waiter sleeps on the event before it is set
    t0 = time.monotonic()
    waiting.set()
    thread.join(5)
    assert woke == [True] and time.monotonic() - t0 < 1

    ctx = CallContext("r" * 32, ObjectStore(), lambda t, d: None, make(), "m")
    ctx.check_cancelled()
    ctx._cancel.set()  # type: ignore[attr-defined]
    with pytest.raises(Cancelled):
        ctx.sleep(10)


def test_outbox_wakes_once_per_drain_and_loses_nothing() -> None:
    outbox = Outbox()
    wakes: list[int] = []
    outbox.use_waker(lambda: wakes.append(1))
    try:
        outbox.put(b"a", [b"1"])
        outbox.put(b"a", [b"2"])
        assert len(wakes) == 1  # one wake-up outstanding is enough
        assert [f for _, f in outbox.drain()] == [[b"1"], [b"2"]]
        outbox.put(b"a", [b"3"])
        assert len(wakes) == 2  # a drain ran since: wake again
        outbox.drained_on_this_thread()
        outbox.put(b"a", [b"4"])  # the draining thread's own: no wake-up
        assert len(wakes) == 2
        assert [f for _, f in outbox.drain()] == [[b"3"], [b"4"]]

        # Many threads putting while one drains: every item arrives, in each thread's order.
        got: list[tuple[bytes, list[Any]]] = []
        stop = threading.Event()

        def drainer() -> None:
            while not stop.is_set() or len(got) < 4 * 500:
                got.extend(outbox.drain())

        def putter(i: int) -> None:
            for j in range(500):
                outbox.put(bytes([i]), [j])

        d = threading.Thread(target=drainer)
        d.start()
        putters = [threading.Thread(target=putter, args=(i,)) for i in range(4)]
        for t in putters:
            t.start()
        for t in putters:
            t.join()
        stop.set()
        d.join(10)
        assert len(got) == 2000
        for i in range(4):
            assert [f[0] for ident, f in got if ident == bytes([i])] == list(range(500))
    finally:
        outbox.close()


def test_linger_takes_a_put_in_place_of_a_wake_up() -> None:
    outbox = Outbox()
    wakes: list[int] = []
    outbox.use_waker(lambda: wakes.append(1))
    outbox.drained_on_this_thread()
    try:
        # Nothing comes: it waits out its time, and a later put wakes as usual.
        t0 = time.monotonic()
        assert outbox.linger(0.05) is False
        assert time.monotonic() - t0 >= 0.04
        threading.Thread(target=outbox.put, args=(b"a", [b"1"])).start()
        deadline = time.monotonic() + 5
        while not wakes and time.monotonic() < deadline:
            time.sleep(0.001)
        assert wakes == [1] and len(outbox.drain()) == 1

        # A put while it lingers ends the wait at once, and sends no wake-up.
        timer = threading.Timer(0.05, outbox.put, args=(b"a", [b"2"]))
        timer.start()
        t0 = time.monotonic()
        assert outbox.linger(10) is True
        assert time.monotonic() - t0 < 5
        assert wakes == [1] and [f for _, f in outbox.drain()] == [[b"2"]]

        # Something already queued: no wait at all; and no signal is left over afterwards.
        outbox.put(b"a", [b"3"])  # (the draining thread's own)
        assert outbox.linger(10) is True
        outbox.drain()
        t0 = time.monotonic()
        assert outbox.linger(0.05) is False
        assert time.monotonic() - t0 >= 0.04
    finally:
        outbox.close()


def test_outbox_pipe_wakes_a_poll_and_is_emptied_by_drain() -> None:
    import select

    outbox = Outbox()
    try:
        thread = threading.Thread(target=lambda: outbox.put(b"a", [b"x"]))
        thread.start()
        thread.join()
        assert select.select([outbox.fileno()], [], [], 1)[0]
        assert len(outbox.drain()) == 1
        assert not select.select([outbox.fileno()], [], [], 0)[0]  # no stale byte left
    finally:
        outbox.close()


def test_worker_pool_runs_in_order_and_drops_pending_work_on_shutdown() -> None:
    pool = WorkerPool(1, "test-worker")
    done: list[int] = []
    gate = threading.Event()
    pool.submit(gate.wait, 10)
    for i in range(5):
        pool.submit(done.append, i)
    pool.submit(lambda: 1 / 0)  # a failing task is logged, the thread goes on
    pool.submit(done.append, 5)
    gate.set()
    deadline = time.monotonic() + 5
    while len(done) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert done == [0, 1, 2, 3, 4, 5]

    gate.clear()
    pool.submit(gate.wait, 10)
    time.sleep(0.05)
    pool.submit(done.append, 99)  # never starts: cancelled by the shutdown
    pool.shutdown(wait=False, cancel_futures=True)
    gate.set()
    time.sleep(0.1)
    assert 99 not in done
    with pytest.raises(RuntimeError):
        pool.submit(done.append, 100)


def test_recv_and_send_helpers_equal_the_multipart_calls() -> None:
    ctx = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    try:
        router.bind("inproc://helpers")
        dealer.connect("inproc://helpers")
        big = memoryview(os.urandom(200_000))
        parts = [b"nearpos/1", b"s" * 64, b"{}", b"", big]
        dealer.send_multipart(parts)
        frames = zmq_io._recv(router)
        assert [f.bytes for f in frames[1:]] == [bytes(p) for p in parts]
        zmq_io._send(router, frames[0].bytes, parts)
        assert dealer.recv_multipart() == [bytes(p) for p in parts]
        with pytest.raises(TypeError):
            zmq_io._send(router, frames[0].bytes, [b"ok", "not a buffer"])  # type: ignore[list-item]
        dealer.send(b"next")  # nothing of the refused message was sent
        zmq_io._send(router, zmq_io._recv(router)[0].bytes, [b"after"])
        assert dealer.recv_multipart() == [b"after"]
    finally:
        router.close(0)
        dealer.close(0)
        ctx.term()


def test_a_client_claiming_the_wake_up_id_is_ignored_and_workers_still_wake_the_loop() -> None:
    server = zmq_io.ZmqServer(KEY, signed_buffers=False, max_message_bytes=2**30)
    server.request.bind("tcp://127.0.0.1:*")
    server.control.bind("tcp://127.0.0.1:*")
    endpoint = server.request.getsockopt(zmq.LAST_ENDPOINT).decode()
    server.start()
    ctx = zmq.Context()
    impostor, client = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    codec = Codec(KEY, "c" * 32, False)
    try:
        impostor.setsockopt(zmq.ROUTING_ID, zmq_io.WAKE_ID)
        for sock in (impostor, client):
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
        impostor.send_multipart(codec.build("call_request", {"method": "echo", "params": {}}))
        # sleep runs on a worker: its reply reaches the client only through a wake-up
        client.send_multipart(
            codec.build("call_request", {"method": "sleep", "params": {"seconds": 0}})
        )
        assert client.poll(5000)
        reply = verify(KEY, client.recv_multipart(), 2**30, signed_buffers=False)
        assert reply.msg_type == "result"
        assert not impostor.poll(200)  # the ROUTER never took it as a peer
    finally:
        impostor.close()
        client.close()
        ctx.term()
        server.request_shutdown()
        assert server.stopped.wait(10)
        server.close()


def test_linger_racing_puts_lose_nothing_and_leave_no_signal() -> None:
    import random

    rng = random.Random(3)
    outbox = Outbox()
    woken = threading.Event()
    outbox.use_waker(woken.set)
    outbox.drained_on_this_thread()
    got: list[object] = []
    try:
        for i in range(300):
            woken.clear()
            delay = rng.uniform(0, 0.0004)
            putter = threading.Thread(
                target=lambda d=delay, i=i: (time.sleep(d), outbox.put(b"a", [i]))
            )
            putter.start()
            if not outbox.linger(0.0002):
                putter.join()
                # put either woke us, or signalled just after the timeout (then linger
                # returned True or the item is queued): either way it is there to drain
                assert woken.wait(5) or outbox._queue
            putter.join()
            got.extend(f[0] for _, f in outbox.drain())
        assert got == list(range(300))
        t0 = time.monotonic()
        assert outbox.linger(0.02) is False and time.monotonic() - t0 >= 0.015
    finally:
        outbox.close()


def test_a_workers_final_put_notifies_when_its_task_ends() -> None:
    outbox = Outbox()
    wakes: list[str] = []
    outbox.use_waker(lambda: wakes.append("wake"))
    pool = WorkerPool(1, "test-worker", outbox)
    done = threading.Event()

    def task() -> None:
        outbox.put(b"a", [b"event"])  # not final: at once
        wakes.append("after event")
        outbox.drain()
        outbox.put(b"a", [b"result"], final=True)  # final: when the task has ended
        wakes.append("after result")
        done.set()

    try:
        pool.submit(task)
        assert done.wait(5)
        deadline = time.monotonic() + 5
        while len(wakes) < 4 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert wakes == ["wake", "after event", "after result", "wake"]
        assert [f for _, f in outbox.drain()] == [[b"result"]]
        outbox.put(b"a", [b"x"], final=True)  # any other thread: at once
        assert wakes[-1] == "wake" and len(wakes) == 5
    finally:
        pool.shutdown()
        outbox.close()
