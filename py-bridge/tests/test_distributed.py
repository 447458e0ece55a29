"""Distributed training through torch.distributed's elastic launcher: real processes (gloo
on the CPU), real DDP, the real nearest-positive plugin. Two processes give one process's
answers on the same global batch; checkpoints resume every rank; a run split over two
"nodes" on loopback (the second started by torchrun) gives the same result; a rendezvous
that cannot form times out; a killed worker with max_restarts restarts the group from the
last checkpoint; no process is left behind. A worker killed with SIGKILL and
cancellation, through the runtime: ts/src/runtime/distributed.integration.test.ts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from nearpos_runtime.training import TrainConfig, Trainer, load_checkpoint
from nearpos_runtime.training.distributed.channel import RESULT, read_pids
from nearpos_runtime.training.distributed.runner import run_distributed
from nearpos_runtime.training.errors import ConfigError, RendezvousFailed

SYN = {"kind": "synthetic", "classes": 4, "modes_per_class": 2, "dim": 8, "per_mode": 20}
PY_BRIDGE = Path(__file__).resolve().parents[1]


def config(tmp: Path | None = None, **over) -> TrainConfig:
    base = {
        "data": SYN,
        "model": {"kind": "mlp", "hidden": [32], "embedding_dim": 8},
        "loss": {"name": "triplet", "config": {"margin": 0.2}},
        "sampler": {"name": "nearest-positive", "config": {}},
        "batch": {"classes": 4, "per_class": 4},
        "optimizer": {"kind": "adam", "lr": 0.01},
        "steps": 4,
        "eval": {"ks": [1, 2], "nmi": False},
        "device": "cpu",
        "threads": 1,  # the same intra-op threads in every run compared
        "seed": 5,
    }
    if tmp is not None:
        base["checkpoint"] = {"dir": str(tmp), "every": 2}
    base.update(over)
    return TrainConfig.model_validate(base)


def gloo(n: int = 2, **over) -> dict:
    return {"nproc_per_node": n, "backend": "gloo", **over}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def wait_listening(endpoint: str, timeout: float = 90) -> None:
    host, port = endpoint.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, int(port))) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {endpoint} after {timeout} s")


def processes_of(rundir: Path) -> list[int]:
    """Processes whose command line names ``rundir`` (the launcher and its workers)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if str(rundir).encode() in (d / "cmdline").read_bytes() and alive(int(d.name)):
                    found.append(int(d.name))
            except OSError:
                continue
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process, and two processes with checkpoints at steps 2 and 4 (shared by tests)."""
    tmp = tmp_path_factory.mktemp("dist")
    single = Trainer(config()).run()
    events: list[tuple[str, dict]] = []
    two = run_distributed(
        config(tmp / "ck", distributed=gloo()),
        lambda t, d: events.append((t, d)),
        workdir=tmp / "run",
    )
    return single, two, events, tmp


def test_two_processes_give_single_process_answers(runs):
    single, two, events, tmp = runs
    assert two.world_size == 2 and single.world_size == 1
    assert len(two.losses) == 4 and all(v > 0 for v in two.losses)
    assert two.losses == pytest.approx(single.losses, abs=1e-5, rel=0)
    assert _close(two.metrics, single.metrics)
    a, b = single.model.module.state_dict(), two.model.module.state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=0)
    # One stream, from the first process: every step once, one eval, rank 0's checkpoints.
    steps = [d["step"] for t, d in events if t == "step"]
    assert steps == [1, 2, 3, 4]
    assert [d["loss"] for t, d in events if t == "step"] == two.losses
    assert [d["step"] for t, d in events if t == "checkpoint"] == [2, 4]
    assert [t for t, _ in events].count("eval") == 1
    assert not processes_of(tmp / "run") and all(
        not alive(p) for p in read_pids(tmp / "run").values()
    )


def test_checkpoint_resumes_every_rank(runs):
    _, two, _, tmp = runs
    state = load_checkpoint(tmp / "ck" / "step-2.pt")
    assert state["world_size"] == 2 and len(state["rank_rng"]) == 2
    resumed = run_distributed(
        config(tmp / "ck2", distributed=gloo(), resume_from=str(tmp / "ck" / "step-2.pt"))
    )
    assert resumed.losses == two.losses  # exactly: same world size, same processes
    assert resumed.metrics == two.metrics
    # Another world size cannot take it over (the step would differ): refused, naming both.
    with pytest.raises(ConfigError, match="written by 2 process.*not 1"):
        Trainer(config(resume_from=str(tmp / "ck" / "step-2.pt"))).run()


def test_rendezvous_that_cannot_form_times_out(tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    cfg = config(distributed=gloo(1, nnodes=2, rdzv_endpoint=endpoint, rdzv_timeout=2))
    t0 = time.monotonic()
    with pytest.raises(RendezvousFailed, match=f"rendezvous at {endpoint} did not form within 2 s"):
        run_distributed(cfg, workdir=tmp_path / "run")
    assert time.monotonic() - t0 < 30
    assert not processes_of(tmp_path / "run")


def test_two_nodes_on_loopback_equal_one_node_with_two_processes(runs, tmp_path):
    """Node 0 from the runtime's API, node 1 as a standard torchrun job."""
    _, two, _, _ = runs
    endpoint = f"127.0.0.1:{free_port()}"
    cfg = config(distributed=gloo(1, nnodes=2, rdzv_endpoint=endpoint, rdzv_timeout=60))
    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(cfg.model_dump_json())
    out: dict = {}

    def node0() -> None:
        try:
            out["result"] = run_distributed(cfg, workdir=tmp_path / "node0")
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            out["error"] = exc

    t = threading.Thread(target=node0)
    t.start()
    wait_listening(endpoint)  # node 0 hosts the rendezvous; node 1 joins it
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PY_BRIDGE), os.environ.get("PYTHONPATH", "")]),
    }
    node1 = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "2",
            "--node-rank",
            "1",
            "--nproc-per-node",
            "1",
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            endpoint,
            "--rdzv-conf",
            "is_host=false",
            "-m",
            "nearpos_runtime.train",
            str(cfg_file),
            "--out",
            str(tmp_path / "node1"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    t.join(180)
    assert node1.returncode == 0, node1.stderr[-3000:]
    if "error" in out:
        raise out["error"]
    r0 = out["result"]
    r1 = json.loads((tmp_path / "node1" / RESULT).read_text())
    assert r0.world_size == 2 and r1["world_size"] == 2
    assert r0.losses == pytest.approx(two.losses, abs=1e-5, rel=0)
    assert r1["losses"] == r0.losses  # every rank computes the same global loss
    assert _close(r0.metrics, two.metrics)
    # node 1 printed its events (torchrun job) as JSON lines
    steps = [json.loads(x) for x in node1.stdout.splitlines() if x.startswith('{"type": "step"')]
    assert [e["data"]["step"] for e in steps] == [1, 2, 3, 4]


def _close(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[g] == pytest.approx(b[g], abs=1e-5) for g in b)


def test_restart_resumes_from_the_last_checkpoint(tmp_path):
    """max_restarts: a killed worker restarts the group from the last checkpoint, and the
    run ends with the single-process losses."""
    rundir, ck = tmp_path / "run", tmp_path / "ck"
    seen: list[tuple[str, dict]] = []
    killed: list[int] = []

    def on_event(type: str, data: dict) -> None:
        seen.append((type, data))
        if type == "step" and data["step"] >= 7 and not killed:
            killed.append(read_pids(rundir)[1])
            os.kill(killed[0], signal.SIGKILL)

    cfg = config(ck, steps=300, distributed=gloo(max_restarts=1))
    cfg = cfg.model_copy(update={"checkpoint": cfg.checkpoint.model_copy(update={"every": 5})})
    result = run_distributed(cfg, on_event, workdir=rundir)
    restart = next(i for i, (t, _) in enumerate(seen) if t == "warning")
    before = [d["path"] for t, d in seen[:restart] if t == "checkpoint"]
    assert before, "the worker was killed before the first checkpoint"
    message = seen[restart][1]["message"]
    assert message.endswith(f"restarted (restart 1); resuming from {before[-1]}"), message
    assert read_pids(rundir)[1] != killed[0]  # a new process took rank 1
    single = Trainer(config(steps=300)).run()
    assert result.losses == pytest.approx(single.losses, abs=1e-4, rel=0)
