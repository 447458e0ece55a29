"""Distributed training throughput: samples/s at 1 and N processes, and the gather's share.

Each configuration trains the same run (synthetic data, an MLP, P x K = 32 x 8 nearest-
positive batches, triplet loss) with the runtime's own trainer:

- 1 process: ``Trainer`` in this process;
- N processes: started by torch.distributed's elastic launcher (``elastic_launch``), each a
  ``Trainer`` with a process group (DDP, the sampler gathering the global batch), as
  ``rt.train({..., distributed})`` runs them.

Every process gets ``--threads`` intra-op threads (default 1), so that N processes never
ask for more threads than N cores (on a busy machine, a process with as many threads as
cores loses much of its time to contention).

samples/s is the global batch x steps / the training loop's wall time (evaluation
excluded). The gather's share is the time each process spends in the sampler's
``all_gather`` calls (``nearest_positive.distributed.gather``: embeddings, labels, ids and
tuples), waiting for the other processes included, over its loop time; the table shows
rank 0's. Configurations are interleaved over rounds and each figure is the median.

    python benchmarks/perf/distributed/run.py                   # CPU: 1 and 2 processes
    python benchmarks/perf/distributed/run.py --nproc 1 2 4 --steps 200 --rounds 5
    python benchmarks/perf/distributed/run.py --device cuda     # nccl, one GPU per process
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "py-bridge"))

import torch
from nearpos_runtime.training import TrainConfig, Trainer


def config(steps: int, device: str, threads: int) -> dict[str, Any]:
    return {
        "data": {
            "kind": "synthetic",
            "classes": 64,
            "modes_per_class": 2,
            "dim": 64,
            "per_mode": 40,
            "seed": 0,
        },
        "model": {"kind": "mlp", "hidden": [512, 512], "embedding_dim": 128},
        "loss": {"name": "triplet", "config": {"margin": 0.2}},
        "sampler": {"name": "nearest-positive", "config": {}},
        "batch": {"classes": 32, "per_class": 8},
        "optimizer": {"kind": "adam", "lr": 1e-3},
        "steps": steps,
        "log_every": steps,
        "eval": {"ks": [1], "nmi": False, "split": "test"},
        "device": device,
        "threads": threads,
        "seed": 0,
    }


def _worker(cfg_json: str) -> dict[str, float]:
    """One process of the distributed run (the launcher's function entry point)."""
    import nearest_positive.distributed as nd
    import torch.distributed as dist
    from nearpos_runtime.training.distributed.group import Group, backend_for, init

    spent = [0.0]
    inner = nd.gather

    def timed(x: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        t0 = time.perf_counter()
        try:
            return inner(x)
        finally:
            if x.is_cuda:
                torch.cuda.synchronize()
            spent[0] += time.perf_counter() - t0

    nd.gather = timed
    cfg = TrainConfig.model_validate_json(cfg_json)
    group = Group.from_env()
    backend = backend_for("auto", group.device(cfg.device))
    init(backend)
    try:
        res = Trainer(cfg, group=group, backend=backend).run()
    finally:
        dist.destroy_process_group()
    return {
        "samples_per_s": res.samples_per_s,
        "gather_share": spent[0] / res.elapsed_s,
        "loss": res.losses[-1],
    }


def run_distributed(
    nproc: int, steps: int, device: str, threads: int
) -> dict[str, float]:
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    cfg = TrainConfig.model_validate(config(steps, device, threads))
    lc = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"bench-{os.getpid()}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
        local_addr="127.0.0.1",
        logs_specs=DefaultLogsSpecs(log_dir=os.devnull),
    )
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    out = elastic_launch(lc, _worker)(cfg.model_dump_json())
    return out[0]


def run_single(steps: int, device: str, threads: int) -> dict[str, float]:
    cfg = TrainConfig.model_validate(config(steps, device, threads))
    res = Trainer(cfg).run()
    return {
        "samples_per_s": res.samples_per_s,
        "gather_share": 0.0,
        "loss": res.losses[-1],
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument(
        "--threads", type=int, default=1, help="intra-op threads per process"
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    args = ap.parse_args()
    if args.device == "cuda":
        gpus = torch.cuda.device_count()
        too_many = [n for n in args.nproc if n > gpus]
        if too_many:
            print(
                f"--device cuda: {gpus} GPU(s) here; skipping --nproc {too_many} (one GPU each)"
            )
            args.nproc = [n for n in args.nproc if n <= gpus]
    runs: dict[int, list[dict[str, float]]] = {n: [] for n in args.nproc}
    for r in range(args.rounds):
        for n in args.nproc:
            t0 = time.perf_counter()
            m = (
                run_single(args.steps, args.device, args.threads)
                if n == 1
                else run_distributed(n, args.steps, args.device, args.threads)
            )
            runs[n].append(m)
            print(
                f"round {r + 1}/{args.rounds}, {n} process(es): {m['samples_per_s']:.0f} "
                f"samples/s, gather {100 * m['gather_share']:.1f}% ({time.perf_counter() - t0:.1f} s "
                "with start-up)",
                flush=True,
            )
    rows = []
    for n, ms in runs.items():
        rows.append(
            {
                "nproc": n,
                "samples_per_s": statistics.median(m["samples_per_s"] for m in ms),
                "gather_share": statistics.median(m["gather_share"] for m in ms),
                "rounds": [m["samples_per_s"] for m in ms],
            }
        )
    base = rows[0]["samples_per_s"] if rows and rows[0]["nproc"] == 1 else None
    print(
        f"\n{args.device}, {os.cpu_count()} cores, torch {torch.__version__}, global batch 256, "
        f"{args.steps} steps, {args.threads} thread(s) per process, median of {args.rounds} "
        f"rounds, load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        f"{'processes':>9} | {'samples/s':>9} | {'vs 1':>5} | {'gather share of a step':>22}"
    )
    for row in rows:
        rel = f"{row['samples_per_s'] / base:.2f}x" if base else "-"
        share = "-" if row["nproc"] == 1 else f"{100 * row['gather_share']:.1f}%"
        print(
            f"{row['nproc']:>9} | {row['samples_per_s']:>9.0f} | {rel:>5} | {share:>22}"
        )
    args.out.write_text(
        json.dumps(
            {
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "device": args.device,
                "cores": os.cpu_count(),
                "threads_per_process": args.threads,
                "load_average": os.getloadavg()[0],
                "torch": torch.__version__,
                "python": platform.python_version(),
                "steps": args.steps,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
