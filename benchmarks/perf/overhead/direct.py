"""The training loop called directly in Python (no runtime, no TypeScript).

Usage: python direct.py CONFIG_JSON REPEATS  -> prints JSON {"wall_s": [...], "metrics": {...}}
A warm-up run first pays the one-time imports, as the runtime's warm-up call does.
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
    repeats = int(sys.argv[2])
    Trainer(TrainConfig.model_validate({**raw, "steps": 5})).run()
    walls, result = [], None
    for _ in range(repeats):
        events: list[tuple[str, dict]] = []
        t0 = time.perf_counter()
        # Events are collected, as the runtime collects and sends them.
        result = Trainer(TrainConfig.model_validate(raw), on_event=_collector(events)).run()
        walls.append(time.perf_counter() - t0)
    assert result is not None
    print(json.dumps({"wall_s": walls, "metrics": result.metrics, "losses": result.losses}))


if __name__ == "__main__":
    main()
