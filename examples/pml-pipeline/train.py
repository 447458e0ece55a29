"""An ordinary pytorch-metric-learning training loop with nearest-positive sampling.

The data (made here, no download): classes that are unions of Gaussian modes, the
situation the sampler is for. The model learns from the class labels only; the mode is
kept aside to measure whether each class keeps its sub-clusters (mode R@1: the nearest
test neighbour comes from the same mode) or collapses them (class R@1 stays high, mode R@1
falls). The one line that adds the sampler is marked below; ``--baseline`` skips it.

    python examples/pml-pipeline/train.py --steps 300
    python examples/pml-pipeline/train.py --steps 300 --baseline
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import numpy as np
import torch
from nearest_positive import NearestPositive
from pytorch_metric_learning import distances, losses, samplers
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_data(
    classes: int, modes: int, dim: int, per_mode: int, noise: float, seed: int
) -> dict[str, torch.Tensor]:
    """Train and test splits of ``classes`` classes, each a union of ``modes`` modes."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes * modes, dim, generator=g)
    mode = torch.arange(classes * modes).repeat_interleave(per_mode)
    x = centres[mode] + noise * torch.randn(mode.numel(), dim, generator=g)
    test = torch.rand(mode.numel(), generator=g) < 0.3
    return {
        "x_train": x[~test], "y_train": mode[~test] // modes, "mode_train": mode[~test],
        "x_test": x[test], "y_test": mode[test] // modes, "mode_test": mode[test],
    }


def evaluate(model: nn.Module, data: dict[str, torch.Tensor]) -> dict[str, float]:
    """Precision@1 (= R@1) of the test embeddings against each other, with PML's
    AccuracyCalculator: on the class labels and on the modes."""
    model.eval()
    with torch.no_grad():
        emb = model(data["x_test"])
    model.train()
    # CustomKNN: exact neighbours in torch (the default needs faiss)
    knn = CustomKNN(distances.LpDistance(normalize_embeddings=True))
    calc = AccuracyCalculator(include=("precision_at_1",), k=1, knn_func=knn)
    return {
        "class_r1": calc.get_accuracy(emb, data["y_test"])["precision_at_1"],
        "mode_r1": calc.get_accuracy(emb, data["mode_test"])["precision_at_1"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300, help="optimizer steps (default 300)")
    p.add_argument("--baseline", action="store_true",
                   help="train without nearest-positive sampling (the loss's own triplets)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: a model this small runs fastest on one)")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--json", action="store_true", help="end with a JSON line of the results")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be at least 1")

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)  # PML's samplers draw from numpy's global generator
    torch.manual_seed(args.seed)
    data = make_data(classes=5, modes=3, dim=32, per_mode=100, noise=1.0, seed=args.seed)

    model = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 32))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    sampler = samplers.MPerClassSampler(data["y_train"], m=8, batch_size=40,
                                        length_before_new_iter=len(data["y_train"]))
    loader = DataLoader(TensorDataset(data["x_train"], data["y_train"]), batch_size=40,
                        sampler=sampler, drop_last=True)

    loss_func = losses.TripletMarginLoss(margin=0.2)
    if not args.baseline:
        loss_func = NearestPositive(loss_func)  # <- the one-line change

    before = evaluate(model, data)
    history: list[float] = []
    start = time.perf_counter()
    step = 0
    while step < args.steps:
        for x, labels in loader:
            embeddings = model(x)
            loss = loss_func(embeddings, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append(loss.item())
            step += 1
            if step % args.log_every == 0 or step == args.steps:
                print(f"step {step:5d}  loss {history[-1]:.4f}", flush=True)
            if step == args.steps:
                break
    seconds = time.perf_counter() - start
    after = evaluate(model, data)

    window = max(1, min(20, len(history) // 4))
    result = {
        "sampler": "baseline" if args.baseline else "nearest-positive",
        "steps": args.steps,
        "seconds": round(seconds, 2),
        "loss_first": sum(history[:window]) / window,
        "loss_last": sum(history[-window:]) / window,
        "before": before,
        "after": after,
    }
    print(f"{result['sampler']}: {args.steps} steps in {seconds:.1f} s; mean loss of the "
          f"first/last {window} steps {result['loss_first']:.4f} -> {result['loss_last']:.4f}")
    print(f"test R@1 on classes {before['class_r1']:.3f} -> {after['class_r1']:.3f}, "
          f"on modes {before['mode_r1']:.3f} -> {after['mode_r1']:.3f} (untrained -> trained)")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
