"""``python -m nearpos_runtime.train CONFIG.json [--out DIR] [--quiet]``: one training.

- Under ``torchrun`` (or any torch.distributed launcher: ``RANK``, ``WORLD_SIZE`` and
  ``LOCAL_RANK`` set), this process is one rank of the run: it trains its shard of each
  global batch; the first process of each node prints the events as JSON lines and writes
  ``events.jsonl``, ``result.json`` and ``model.pt`` to ``--out`` (a directory of its node).
- Otherwise, with ``distributed`` in the config, it starts the run's processes itself
  through torch.distributed's elastic launcher, as the runtime's ``train`` does;
- else it trains in this process.

The config is a ``TrainConfig`` (docs/training.md) as JSON. Exit status 0 on success.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .training.config import TrainConfig
from .training.distributed.channel import EventWriter


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nearpos_runtime.train", description=__doc__)
    p.add_argument("config", type=Path, help="TrainConfig as JSON")
    p.add_argument("--out", type=Path, default=Path("nearpos-run"), help="Output directory")
    p.add_argument("--quiet", action="store_true", help="Do not print events")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = TrainConfig.model_validate_json(args.config.read_text())
    except (OSError, ValueError) as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 2
    if {"RANK", "WORLD_SIZE", "LOCAL_RANK"} <= set(os.environ):
        from .training.distributed.worker import run_worker

        run_worker(cfg, args.out, echo=not args.quiet)
        return 0
    from .training.distributed.worker import write_result
    from .training.trainer import Trainer

    events = EventWriter(args.out, echo=not args.quiet)
    try:
        if cfg.distributed is not None and cfg.distributed.launches:
            from .training.distributed.runner import run_distributed

            result = run_distributed(cfg, events)
        else:
            result = Trainer(cfg, on_event=events).run()
    finally:
        events.close()
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    from torch.distributed.elastic.multiprocessing.errors import record

    sys.exit(record(main)())
