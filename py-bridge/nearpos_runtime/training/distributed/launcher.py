"""The launcher process: torch.distributed's elastic launcher, started by :mod:`.runner`.

``python -m nearpos_runtime.training.distributed.launcher RUNDIR`` reads ``RUNDIR/config.json``
and runs this node's share of the run with ``torch.distributed.launcher.api.elastic_launch``
(c10d rendezvous; the agent restarts the group up to ``max_restarts`` times); each process
runs ``python -m nearpos_runtime.train``. On failure it writes ``RUNDIR/failure.json``: the
failed processes (global rank, exit code or signal) or the rendezvous error. It stops its
processes when it receives SIGTERM and when the process that started it goes away.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from ..config import DistributedSpec, TrainConfig
from .channel import FAILURE, write_json
from .watch import exit_with_parent

#: Seconds the agent waits for its processes to end after SIGTERM before SIGKILL.
SHUTDOWN_TIMEOUT = 5


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def rdzv_host(d: DistributedSpec) -> tuple[str, str]:
    """The rendezvous endpoint (one node without one: a free loopback port) and its host."""
    endpoint = d.rdzv_endpoint or "127.0.0.1:0"
    return endpoint, endpoint.rsplit(":", 1)[0]


def run_id(d: DistributedSpec) -> str:
    """Random on one node; on several, torchrun's default (``none``), so nodes started by
    ``torchrun`` without ``--rdzv-id`` and nodes started by the runtime meet."""
    if d.nnodes == 1:
        return f"nearpos-{uuid.uuid4().hex[:12]}"
    return "none"


def launch_config(d: DistributedSpec, rundir: Path) -> Any:
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.launcher.api import LaunchConfig

    endpoint, host = rdzv_host(d)
    return LaunchConfig(
        min_nodes=d.nnodes,
        max_nodes=d.nnodes,
        nproc_per_node=d.nproc_per_node,
        run_id=run_id(d),
        rdzv_backend="c10d",
        rdzv_endpoint=endpoint,
        rdzv_configs={
            "timeout": d.rdzv_timeout,
            "join_timeout": d.rdzv_timeout,
            "read_timeout": d.rdzv_timeout,
            "is_host": d.node_rank == 0,
        },
        max_restarts=d.max_restarts,
        monitor_interval=0.1,
        start_method="spawn",
        local_addr=host.strip("[]") if is_loopback(host) else None,
        logs_specs=DefaultLogsSpecs(log_dir=str(rundir / "logs"), redirects=Std.ALL),
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )


def failures_json(err: Any) -> list[dict[str, Any]]:
    out = []
    for rank, f in sorted(err.failures.items()):
        out.append(
            {
                "rank": int(rank),
                "local_rank": int(f.local_rank),
                "pid": int(f.pid),
                "exitcode": int(f.exitcode),
                "signal": f.signal_name() if f.exitcode < 0 else None,
                "message": str(f.message)[:2000],
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m nearpos_runtime.training.distributed.launcher RUNDIR")
        return 2
    rundir = Path(args[0])
    exit_with_parent(signal.SIGTERM)  # the agent then stops its processes
    cfg = TrainConfig.model_validate_json((rundir / "config.json").read_text())
    d = cfg.distributed or DistributedSpec(nproc_per_node=1)
    _, host = rdzv_host(d)
    if is_loopback(host) and sys.platform == "linux":
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # collectives on loopback only

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.launcher.api import elastic_launch

    entry = ["-m", "nearpos_runtime.train", str(rundir / "config.json"), "--out", str(rundir)]
    try:
        elastic_launch(launch_config(d, rundir), sys.executable)(*entry, "--quiet")
    except ChildFailedError as err:
        write_json(rundir / FAILURE, {"kind": "workers", "failures": failures_json(err)})
        return 1
    except RendezvousError as err:
        endpoint = d.rdzv_endpoint or "127.0.0.1 (a free port)"
        write_json(
            rundir / FAILURE,
            {
                "kind": "rendezvous",
                "message": f"{type(err).__name__}: {err}",
                "endpoint": endpoint,
                "nnodes": d.nnodes,
                "timeout_s": d.rdzv_timeout,
            },
        )
        return 1
    except SignalException as err:
        write_json(rundir / FAILURE, {"kind": "signal", "message": str(err)})
        return 128 + int(err.sigval)
    except Exception as err:  # noqa: BLE001 - reported to the runtime, which raises it
        write_json(
            rundir / FAILURE, {"kind": "launcher", "message": f"{type(err).__name__}: {err}"}
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
