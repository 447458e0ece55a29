"""The training loop called directly in Python (no runtime, no TypeScript).

Usage: python direct.py CONFIG_JSON
Pays the one-time imports with a 5-step warm-up (as the runtime's warm-up call does), prints
``ready``, then runs the training once per line read on stdin and prints one JSON line
{"wall_s", "metrics", "losses"} per run. run.ts interleaves these runs with the TS-driven
ones, so slow drifts of a shared machine hit both sides alike.
"""

from __future__ import annotations

import json
import sys
import time

from nearpos_runtime.training import TrainConfig, Trainer


def _collector(events: list[tuple[str, dict]]):
    return lambda t, d: events.append((t, d))


def main() -> None:
    raw = json.loads(sys.argv[1])
    Trainer(TrainConfig.model_validate({**raw, "steps": 5})).run()
    print("ready", flush=True)
    for _ in sys.stdin:
        events: list[tuple[str, dict]] = []
        t0 = time.perf_counter()
        # Events are collected, as the runtime collects and sends them.
        result = Trainer(TrainConfig.model_validate(raw), on_event=_collector(events)).run()
        wall = time.perf_counter() - t0
        print(json.dumps({"wall_s": wall, "metrics": result.metrics, "losses": result.losses}), flush=True)


if __name__ == "__main__":
    main()
