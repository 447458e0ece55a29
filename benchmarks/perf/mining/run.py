"""Mining benchmark: `select` vs PML BatchEasyHardMiner(pos_strategy="easy") vs a bare matmul.

Labels are P classes x 4 for `select`, PML and the matmul: `select` gathers each anchor's
few class rows there. "8 classes" and "1 class" give each class a large share of the
batch (B/8 rows, all B rows): `select` then takes its matmul path, one score matmul per
(class, anchor tile); with one class that is the full B x M x d matmul.

Each measurement runs in two fresh child processes. One times the call (best of --repeat
after a warm-up, nothing else running in the process). The other measures peak memory
from a clean baseline: a thread samples the process RSS (/proc/self/statm, every 0.5 ms)
and reports the high-water mark above the RSS just before the call, with glibc's mmap
threshold fixed so freed large blocks leave RSS. On CUDA the figure is
torch.cuda.max_memory_allocated above the allocation before the call.

    python benchmarks/perf/mining/run.py                 # CPU, all sizes
    python benchmarks/perf/mining/run.py --device cuda
    python benchmarks/perf/mining/run.py --tile-sweep 8192
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

HERE = Path(__file__).resolve().parent
DEFAULT_SIZES = [1024, 4096, 8192, 16384, 65536]
MEMORY_RUNS = 2  # sampled runs per measurement (the peak of them is reported)
CLASSES = {"select-8": 8, "select-1": 1}  # labels of the few-classes measurements
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRSS:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> Self:
        self.base = rss()
        self.peak = self.base
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.0005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss())

    @property
    def extra(self) -> int:
        return self.peak - self.base


def worker(
    method: str, n: int, dim: int, device: str, tile: int | None, repeat: int, mode: str
) -> dict:
    import torch

    torch.manual_seed(0)
    dev = torch.device(device)
    e = torch.randn(n, dim, device=dev)
    y = torch.arange(n // 4, device=dev).repeat_interleave(4)
    if method.startswith("select"):
        from nearest_positive import select

        if method in CLASSES:  # few classes, each a large share of the batch
            y = torch.arange(n, device=dev) % CLASSES[method]

        def fn():
            return select(e, y, tile_size=tile)
    elif method == "pml":
        from pytorch_metric_learning.miners import BatchEasyHardMiner

        m = BatchEasyHardMiner(pos_strategy="easy", neg_strategy="all")

        def fn():
            return m(e, y)
    else:
        def fn():
            return torch.mm(e, e.t())

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    # warm-up on the real input: first-call costs (thread pools, allocator arenas, lazy
    # library loading) are not the method's memory
    del_out = fn()
    del del_out
    # Timed runs have no sampler: its thread takes the GIL every 0.5 ms and a core on
    # small machines, which slows code that runs Python between torch ops (the bare
    # matmul is one op and would not feel it). Memory is measured in separate runs.
    if mode == "memory":
        return {"peak_extra_bytes": peak_memory(fn, sync, dev)}
    times = []
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t)
        del out
    return {"seconds": min(times)}


def peak_memory(fn: Callable[[], object], sync: Callable[[], None], dev: torch.device) -> int:
    """Peak RSS (CPU) or allocated memory (CUDA) above the level before the call."""
    import torch

    peaks = []
    for _ in range(MEMORY_RUNS):
        sync()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        with PeakRSS() as mem:
            out = fn()
            sync()
        del out
        peaks.append(
            torch.cuda.max_memory_allocated() - base if dev.type == "cuda" else mem.extra
        )
    return max(peaks)


def measure(method, n, dim, device, tile, repeat, timeout):
    """Time in one child process, peak memory in another (see the module docstring)."""
    result: dict = {}
    for mode in ("time", "memory"):
        cmd = [sys.executable, __file__, "--worker", method, str(n), str(dim), device,
               str(tile or 0), str(repeat), mode]
        # A fixed mmap threshold makes glibc return every large block to the system when
        # it is freed, so RSS follows live tensors instead of memory kept from the
        # warm-up call (which would hide the measured call's allocations).
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(2**17)} if mode == "memory" else None
        try:
            out = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env
            )
        except subprocess.TimeoutExpired:
            return {"skipped": f"timed out after {timeout} s"}
        if out.returncode != 0:
            return {"skipped": f"failed: {out.stderr.strip().splitlines()[-1:]}"}
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return result


def fmt(r: dict, w: int = 9) -> str:
    if "skipped" in r:
        return f"{'skipped':>{w}} {'':>10}"
    return f"{r['seconds']:{w}.3f} {r['peak_extra_bytes'] / 2**20:10.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES, help="B = M values")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=5, help="runs per measurement (best time)")
    ap.add_argument("--few-max", type=int, default=16384,
                    help="largest size for the 8-class and 1-class select measurements")
    ap.add_argument("--pml-max", type=int, default=8192,
                    help="largest size for PML (its B x M temporaries: ~29 bytes per entry)")
    ap.add_argument("--matmul-max-gib", type=float, default=4.0,
                    help="skip the bare matmul when its B x M float32 output exceeds this")
    ap.add_argument("--tile-sweep", type=int, metavar="N",
                    help="instead: time select (1 class) at size N for several tile sizes")
    ap.add_argument("--timeout", type=float, default=600.0, help="per measurement, seconds")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        method, n, dim, device, tile, repeat, mode = a.worker
        print(json.dumps(
            worker(method, int(n), int(dim), device, int(tile) or None, int(repeat), mode)
        ))
        return

    import torch

    meta = {"device": a.device, "dim": a.dim, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "command": " ".join(sys.argv)}
    rows = []
    if a.tile_sweep:
        n = a.tile_sweep
        print(f"select, 1 class, at B = M = {n}, d = {a.dim}, {a.device}: tile size sweep")
        print(f"{'tile':>6} {'seconds':>9} {'extra MiB':>10}")
        for tile in (64, 128, 256, 512, 1024, 2048, 0):
            r = measure("select-1", n, a.dim, a.device, tile, a.repeat, a.timeout)
            rows.append({"tile": tile or "auto", **r})
            print(f"{tile or 'auto':>6} {fmt(r)}")
    else:
        print(f"B = M, d = {a.dim}, {a.device}; time = best of {a.repeat}; "
              "extra = peak memory above the inputs; P x 4 labels unless said")
        heads = ("select", "8 classes", "1 class", "PML", "matmul")
        print(f"{'size':>6} | " + " | ".join(f"{h + ' s':>11} {'MiB':>10}" for h in heads)
              + " | /mm: sel 8cls 1cls")
        for n in a.sizes:
            rep = a.repeat if n <= 16384 else 1
            r = {"select": measure("select", n, a.dim, a.device, None, rep, a.timeout)}
            for method in CLASSES:
                r[method] = (measure(method, n, a.dim, a.device, None, rep, a.timeout)
                             if n <= a.few_max else {"skipped": f"size > --few-max {a.few_max}"})
            pml_gib = 29 * n * n / 2**30
            r["pml"] = (measure("pml", n, a.dim, a.device, None, rep, a.timeout)
                        if n <= a.pml_max
                        else {"skipped": f"size > --pml-max {a.pml_max} (~{pml_gib:.1f} GiB)"})
            r["matmul"] = (
                measure("matmul", n, a.dim, a.device, None, rep, a.timeout)
                if n * n * 4 <= a.matmul_max_gib * 2**30
                else {"skipped": f"output {n * n * 4 / 2**30:.0f} GiB > --matmul-max-gib"})
            mm = r["matmul"]

            def ratio(x: dict, w: int, mm: dict = mm) -> str:
                ok = "seconds" in x and "seconds" in mm
                return f"{x['seconds'] / mm['seconds']:{w}.2f}" if ok else f"{'-':>{w}}"

            print(f"{n:>6} | " + " | ".join(fmt(x, 11) for x in r.values()) + " | "
                  + " ".join(ratio(r[k], 5) for k in ("select", *CLASSES)))
            for name, x in r.items():
                if "skipped" in x:
                    print(f"         {name} skipped at {n}: {x['skipped']}")
            rows.append({"size": n, "select": r["select"], "select_8_classes": r["select-8"],
                         "select_1_class": r["select-1"], "pml_easy_hard": r["pml"],
                         "matmul": mm})
    a.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"figures written to {a.out}")


if __name__ == "__main__":
    main()
