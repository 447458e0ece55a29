"""Helpers for tests and benchmarks: spawn a real runtime process, install a plugin dir."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class RuntimeProcess:
    proc: subprocess.Popen[bytes]
    directory: Path
    key: bytes
    connection: dict[str, Any]
    stderr_path: Path

    @property
    def connection_file(self) -> Path:
        return self.directory / "connection.json"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdin:
            self.proc.stdin.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def private_dir() -> Path:
    """A short 0700 directory under /tmp (ipc paths must stay under ~100 bytes)."""
    return Path(tempfile.mkdtemp(prefix="nprt-", dir="/tmp" if os.path.isdir("/tmp") else None))


def spawn_runtime(
    args: list[str] | None = None,
    *,
    key: bytes | None = None,
    extra_pythonpath: list[Path] | None = None,
    timeout: float = 60,
) -> RuntimeProcess:
    """Start ``python -m nearpos_runtime serve --key-stdin`` and wait for its connection file."""
    key = key or os.urandom(32)
    directory = private_dir()
    conn = directory / "connection.json"
    env = dict(os.environ)
    env.pop("NEARPOS_KEY", None)
    if extra_pythonpath:
        parts = [str(p) for p in extra_pythonpath] + [env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    stderr_path = directory / "stderr.log"
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nearpos_runtime",
                "serve",
                "--connection-file",
                str(conn),
                "--key-stdin",
                *(args or []),
            ],
            stdin=subprocess.PIPE,
            stdout=err,
            stderr=err,
            env=env,
        )
    assert proc.stdin is not None
    proc.stdin.write(key.hex().encode() + b"\n")
    proc.stdin.flush()
    deadline = time.monotonic() + timeout
    while not conn.exists():
        if proc.poll() is not None:
            text = stderr_path.read_text(errors="replace")
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(f"runtime exited with {proc.returncode}:\n{text[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError("runtime did not write its connection file")
        time.sleep(0.02)
    return RuntimeProcess(proc, directory, key, json.loads(conn.read_text()), stderr_path)


def install_plugin_dir(
    source: Path, dest: Path, dist_name: str, entry_points: dict[str, str]
) -> Path:
    """Copy package ``source`` into ``dest`` with a ``.dist-info`` declaring ``entry_points``
    in the ``nearpos.plugins`` group; put ``dest`` on sys.path / PYTHONPATH to use it."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest / source.name, ignore=shutil.ignore_patterns("__pycache__"))
    info = dest / f"{dist_name}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 0.1.0\n", encoding="utf-8"
    )
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[nearpos.plugins]\n{lines}", encoding="utf-8")
    return dest
