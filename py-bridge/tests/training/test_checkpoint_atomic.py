"""Checkpoint writes: concurrent saves to one path, failed and killed saves (real torch)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from nearpos_runtime.client import Client
from nearpos_runtime.training.atomic import temporaries, write_atomic
from nearpos_runtime.training.trainer import load_checkpoint, save_atomic


def state(i: int, n: int = 200_000) -> dict:
    return {"format": 1, "writer": i, "x": torch.full((n,), float(i))}


def test_concurrent_saves_from_threads_leave_one_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    errors: list[BaseException] = []
    start = threading.Barrier(12)

    def save(i: int) -> None:
        start.wait()
        try:
            for _ in range(3):
                save_atomic(state(i), path)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    loaded = load_checkpoint(path)
    assert bool((loaded["x"] == float(loaded["writer"])).all())  # one writer's whole file
    assert temporaries(path) == []
    save_atomic(state(99), path)  # afterwards, the last writer wins
    assert load_checkpoint(path)["writer"] == 99


def test_a_failed_save_keeps_the_previous_file_and_removes_its_temporary(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    save_atomic(state(1), path)

    def broken(f) -> None:  # noqa: ANN001
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, broken)
    with pytest.raises((TypeError, AttributeError)):
        save_atomic({"format": 1, "fn": lambda: 0}, path)  # torch.save cannot pickle it
    assert load_checkpoint(path)["writer"] == 1
    assert temporaries(path) == []


SAVER = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from nearpos_runtime.training.trainer import save_atomic
    path = Path(sys.argv[1])
    i = 0
    while True:
        i += 1
        save_atomic({"format": 1, "writer": i, "x": torch.full((4_000_000,), float(i))}, path)
        print(i, flush=True)
    """
)


def test_a_killed_save_never_corrupts_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    for delay in (0.0, 0.01, 0.03, 0.07):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # one whole save done: the file exists
        time.sleep(delay)  # then kill it at some point of a later save
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        loaded = load_checkpoint(path)
        assert bool((loaded["x"] == float(loaded["writer"])).all())
        for tmp in temporaries(path):  # age them past the stale threshold
            os.utime(tmp, (time.time() - 3600, time.time() - 3600))
    # The killed writers' temporaries are removed by the next save to the same path.
    save_atomic(state(7, 10), path)
    assert temporaries(path) == [] and load_checkpoint(path)["writer"] == 7


def test_a_live_writers_temporary_is_not_taken_for_stale(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    mine = path.with_name(f".{path.name}.{os.getpid()}-00ff.tmp")
    mine.write_bytes(b"in progress")
    os.utime(mine, (time.time() - 3600, time.time() - 3600))
    save_atomic(state(1, 10), path)
    assert mine.exists()


TINY = {
    "data": {"kind": "synthetic", "classes": 3, "dim": 8, "per_mode": 10},
    "model": {"kind": "mlp", "hidden": [512, 512], "embedding_dim": 64},
    "batch": {"classes": 3, "per_class": 4},
    "steps": 1,
    "eval": {"ks": [1], "nmi": False},
    "device": "cpu",
}


def test_concurrent_checkpoint_save_calls_to_one_path(client: Client, tmp_path: Path) -> None:
    model = client.call("train", TINY, timeout=120)["model"]
    path = tmp_path / "shared.pt"
    ids = [client.submit("checkpoint_save", {"model": model, "path": str(path)}) for _ in range(16)]
    outcomes = [client.wait(i, timeout=120) for i in ids]
    ends = [o.terminal for o in outcomes if o.terminal is not None]
    failures = [t.content for t in ends if t.msg_type != "result"]
    assert failures == [] and len(ends) == 16
    loaded = client.call("checkpoint_load", {"path": str(path)})
    assert loaded["model_config"]["hidden"] == [512, 512]
    assert temporaries(path) == []
    client.call("release", {"id": model})
    client.call("release", {"id": loaded["model"]})
