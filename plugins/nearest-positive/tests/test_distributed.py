"""Two gloo processes on CPU must reproduce single-process training on the global batch."""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nearest_positive import NearestPositive, create_loss

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import losses  # noqa: E402

WORLD = 2


def data():
    g = torch.Generator().manual_seed(0)
    e = torch.randn(24, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (24,), generator=g)
    return e, y


def shards():
    return [(0, 10), (10, 24)]  # unequal sizes on purpose


def make_loss(name):
    return {"pml-triplet": lambda: losses.TripletMarginLoss(),
            "pml-contrastive": lambda: losses.ContrastiveLoss(),
            "margin": lambda: create_loss("margin", learn_beta=False)}[name]()


CASES = [("pml-triplet", "all"), ("pml-contrastive", "hardest"), ("margin", "semihard")]


def worker(rank, port, out):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=WORLD)
    try:
        e, y = data()
        lo, hi = shards()[rank]
        results = []
        for name, negatives in CASES:  # one process group for all cases: spawning is slow
            local = e[lo:hi].clone().requires_grad_(True)
            w = NearestPositive(make_loss(name), negatives=negatives, distributed=True, seed=0)
            value = w(local, y[lo:hi])
            value.backward()
            results.append((value.item(), local.grad.tolist()))  # plain data, no shared memory
        out.put((rank, results))
    finally:
        dist.destroy_process_group()


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
