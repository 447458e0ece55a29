"""Step benchmark: NearestPositive(PML loss) against the same PML loss with PML's miner.

One training step's loss computation: miner + loss forward + backward, on a (B, d) leaf
tensor of embeddings (no model), P classes x K samples per batch. Each pairing runs our
wrapper and PML's usual miner for the same loss, side by side in one process:

    triplet-semihard  TripletMarginLoss: NearestPositive(negatives="semihard")
                      vs TripletMarginMiner(type_of_triplets="semihard")
    margin-dw         MarginLoss(learn_beta=True): NearestPositive(negatives=
                      "distance-weighted") vs DistanceWeightedMiner
    ms-all            MultiSimilarityLoss: NearestPositive(negatives="all")
                      vs MultiSimilarityMiner
    easy-positive     TripletMarginLoss: NearestPositive(negatives="semihard") vs
                      BatchEasyHardMiner(pos_strategy="easy") (its default negatives:
                      semihard): both take easy (nearest) positives
    easy-hard         TripletMarginLoss: NearestPositive(negatives="hardest") vs
                      BatchEasyHardMiner(pos_strategy="easy", neg_strategy="hard")

Repeats are interleaved (every round runs every pairing and side once, in a shuffled
order) and each figure is the median over rounds: the machine is shared and noisy.

    python benchmarks/perf/step/run.py                      # CPU (and CUDA if present)
    python benchmarks/perf/step/run.py --devices cuda --repeat 31
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
DEFAULT_BATCHES = [128, 512, 2048]
PAIRINGS = ("triplet-semihard", "margin-dw", "ms-all", "easy-positive", "easy-hard")
TARGET = 1.0  # ours / PML, at most


#: "wall": elapsed time. "cpu": CPU time of the calling thread, which leaves out time
#: spent waiting for other processes' jobs; meaningful with --threads 1 on CPU only.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}
clock = CLOCKS["wall"]


class TimedMiner:
    """Stands in for NearestPositive.miner and records how long each call took."""

    def __init__(self, inner: Any, sync: Callable[[], None]) -> None:
        self.inner = inner
        self.sync = sync
        self.seconds = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.sync()
        t = clock()
        out = self.inner(*args, **kwargs)
        self.sync()
        self.seconds = clock() - t
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


Step = Callable[[torch.Tensor], tuple[torch.Tensor, float, int]]


def make_sides(pairing: str, labels: torch.Tensor, device: torch.device,
               sync: Callable[[], None]) -> dict[str, Step]:
    """{"ours": step, "pml": step}; a step returns (loss, mining seconds, tuple count)."""
    from nearest_positive import NearestPositive
    from pytorch_metric_learning import losses, miners

    def loss_for() -> torch.nn.Module:
        if pairing == "margin-dw":
            return losses.MarginLoss(margin=0.2, beta=1.2, learn_beta=True).to(device)
        if pairing == "ms-all":
            return losses.MultiSimilarityLoss().to(device)
        return losses.TripletMarginLoss(margin=0.2).to(device)

    negatives = {"triplet-semihard": "semihard", "margin-dw": "distance-weighted",
                 "ms-all": "all", "easy-positive": "semihard", "easy-hard": "hardest"}
    pml_miner = {
        "triplet-semihard": lambda: miners.TripletMarginMiner(
            margin=0.2, type_of_triplets="semihard"),
        "margin-dw": lambda: miners.DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4),
        "ms-all": lambda: miners.MultiSimilarityMiner(epsilon=0.1),
        "easy-positive": lambda: miners.BatchEasyHardMiner(pos_strategy="easy"),
        "easy-hard": lambda: miners.BatchEasyHardMiner(pos_strategy="easy", neg_strategy="hard"),
    }[pairing]()

    wrapped = NearestPositive(loss_for(), negatives=negatives[pairing], seed=0,
                              warn_small_k=False)
    timed = TimedMiner(wrapped.miner, sync)
    wrapped.miner = timed  # type: ignore[assignment]

    def ours(e: torch.Tensor) -> tuple[torch.Tensor, float, int]:
        value = wrapped(e, labels)
        return value, timed.seconds, int(wrapped.last_diagnostics["tuples"])

    pml_loss = loss_for()

    def pml(e: torch.Tensor) -> tuple[torch.Tensor, float, int]:
        sync()
        t = clock()
        tup = pml_miner(e, labels)
        sync()
        mined = clock() - t
        count = len(tup[0]) if len(tup) == 3 else len(tup[0]) + len(tup[2])
        return pml_loss(e, labels, tup), mined, count

    return {"ours": ours, "pml": pml}


def embeddings(b: int, k: int, dim: int, noise: float,
               device: torch.device) -> tuple[torch.Tensor, ...]:
    """P x K rows: a standard normal class mean plus `noise` times standard normal noise.
    At noise 1.5 the mean cosine similarity is 0.31 within a class and 0 across: classes
    overlap partly, as early in training, and every PML miner has tuples to return.
    Labels come class by class, as from an M-per-class sampler."""
    g = torch.Generator().manual_seed(0)
    p = b // k
    labels = torch.arange(p).repeat_interleave(k)
    means = torch.randn(p, dim, generator=g)
    x = means[labels] + noise * torch.randn(b, dim, generator=g)
    return x.to(device), labels.to(device)


def run_batch(b: int, k: int, dim: int, noise: float, device: torch.device, repeat: int,
              pairings: list[str]) -> list[dict[str, Any]]:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    base, labels = embeddings(b, k, dim, noise, device)
    steps = {(pr, side): fn for pr in pairings
             for side, fn in make_sides(pr, labels, device, sync).items()}
    samples: dict[tuple[str, str], list[tuple[float, float, int]]] = {key: [] for key in steps}

    def once(key: tuple[str, str]) -> tuple[float, float, int]:
        e = base.clone().requires_grad_(True)
        sync()
        t = clock()
        value, mined, count = steps[key](e)
        value.backward()
        sync()
        return clock() - t, mined, count

    for key in steps:  # warm-up: first-call costs (allocator, lazy imports, kernels)
        once(key)
    order = list(steps)
    rng = random.Random(b)
    for _ in range(repeat):
        rng.shuffle(order)
        for key in order:
            samples[key].append(once(key))

    rows = []
    for pr in pairings:
        row: dict[str, Any] = {"batch": b, "k": k, "pairing": pr}
        for side in ("ours", "pml"):
            s = samples[(pr, side)]
            row[side] = {
                "step_ms": 1e3 * statistics.median(x[0] for x in s),
                "mine_ms": 1e3 * statistics.median(x[1] for x in s),
                "loss_ms": 1e3 * statistics.median(x[0] - x[1] for x in s),
                "tuples": s[-1][2],
                "runs": len(s),
            }
        row["ratio"] = row["ours"]["step_ms"] / row["pml"]["step_ms"]
        row["target_met"] = row["ratio"] <= TARGET
        rows.append(row)
    return rows


def load() -> list[float]:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=DEFAULT_BATCHES)
    ap.add_argument("--k", type=int, default=4, help="samples per class (default 4)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--noise", type=float, default=1.5,
                    help="within-class noise over class-mean scale (default 1.5)")
    ap.add_argument("--devices", nargs="+", default=None,
                    help="default: cpu, plus cuda when available")
    ap.add_argument("--repeat", type=int, default=15, help="interleaved rounds (median)")
    ap.add_argument("--repeat-large", type=int, default=7,
                    help="rounds at batches above 512 (PML's miners take seconds there)")
    ap.add_argument("--pairings", nargs="+", default=list(PAIRINGS), choices=PAIRINGS)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall (default) or cpu: CPU time of the calling thread (CPU only, "
                    "with --threads 1: insensitive to other jobs on a shared machine)")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    a = ap.parse_args()
    global clock
    if a.threads:
        torch.set_num_threads(a.threads)
    devices = a.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if a.clock == "cpu" and (torch.get_num_threads() != 1 or "cuda" in devices):
        ap.error("--clock cpu needs --threads 1 and CPU only (it counts one thread)")
    clock = CLOCKS[a.clock]

    import pytorch_metric_learning

    meta = {"dim": a.dim, "k": a.k, "noise": a.noise, "torch": torch.__version__,
            "pml": pytorch_metric_learning.__version__,
            "threads": torch.get_num_threads(), "clock": a.clock, "machine": platform.machine(),
            "cpus": os.cpu_count(), "command": " ".join(["run.py", *sys.argv[1:]]),
            "load_before": load(), "target_ratio": TARGET}
    results = []
    head = (f"{'device':>6} {'B':>5} {'pairing':>16} | {'ours ms':>8} {'mine':>7} "
            f"{'loss':>7} | {'PML ms':>8} {'mine':>7} {'loss':>7} | {'ours/PML':>8} "
            f"{'<=1.0x':>6} | {'tuples ours/PML':>16}")
    print(f"d = {a.dim}, K = {a.k}, noise = {a.noise}, threads = {meta['threads']}, "
          f"clock = {a.clock}; "
          "median of interleaved "
          "rounds; mine = miner call, loss = the rest of the step (loss fwd + bwd)")
    print(head)
    print("-" * len(head))
    for dev_name in devices:
        device = torch.device(dev_name)
        for b in a.batches:
            rep = a.repeat if b <= 512 else a.repeat_large
            for row in run_batch(b, a.k, a.dim, a.noise, device, rep, a.pairings):
                row["device"] = dev_name
                results.append(row)
                o, p = row["ours"], row["pml"]
                print(f"{dev_name:>6} {b:>5} {row['pairing']:>16} | {o['step_ms']:8.1f} "
                      f"{o['mine_ms']:7.1f} {o['loss_ms']:7.1f} | {p['step_ms']:8.1f} "
                      f"{p['mine_ms']:7.1f} {p['loss_ms']:7.1f} | {row['ratio']:7.2f}x "
                      f"{'yes' if row['target_met'] else 'NO':>6} | "
                      f"{o['tuples']:>7}/{p['tuples']:<8}", flush=True)
    meta["load_after"] = load()
    a.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
