"""Two gloo processes on CPU must reproduce single-process training on the global batch."""

import socket

import pytest
import torch
import torch.multiprocessing as mp
from np_distributed_worker import CASES, WORLD, data, make_loss, shards, worker

from nearest_positive import NearestPositive

pytest.importorskip("pytorch_metric_learning")

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_equal_single_process():
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, port, q)) for r in range(WORLD)]
    for p in procs:
        p.start()
    results = dict(q.get(timeout=90) for _ in range(WORLD))
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0

    for case, (name, negatives) in enumerate(CASES):
        e, y = data()
        e = e.clone().requires_grad_(True)
        single = NearestPositive(make_loss(name), negatives=negatives, seed=0)
        value = single(e, y)
        value.backward()
        assert value.item() > 0
        for rank in range(WORLD):
            v, grad = results[rank][case]
            lo, hi = shards()[rank]
            assert v == pytest.approx(value.item(), rel=1e-9, abs=1e-12), name
            torch.testing.assert_close(torch.tensor(grad, dtype=torch.float64), e.grad[lo:hi],
                                       rtol=1e-7, atol=1e-10, msg=name)
