"""Worker for test_distributed (a plain module, so spawned processes can import it)."""

import torch
import torch.distributed as dist
from pytorch_metric_learning import losses

from nearest_positive import NearestPositive, create_loss

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
