"""Process lifecycle: shutdown, parent death, stdin EOF, tcp, refused addresses and keys."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from nearpos_runtime.client import Client
from nearpos_runtime.endpoints import EndpointError, check_private_dir, plan_address
from nearpos_runtime.keys import KeyFileError, read_key_file
from nearpos_runtime.protocol.version import PROTOCOL_VERSION
from nearpos_runtime.testing import private_dir, spawn_runtime

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie (dead, not yet reaped by anyone) counts as gone
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_protocol_version_matches_doc() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"**Protocol version: {PROTOCOL_VERSION}**" in text


def test_shutdown_cancels_replies_and_removes_ipc_files() -> None:
    rt = spawn_runtime()
    try:
        files = [rt.directory / "request", rt.directory / "control", rt.connection_file]
        assert all(f.exists() for f in files)
        with Client(rt.connection, rt.key) as client:
            running = client.submit("sleep", {"seconds": 30})
            time.sleep(0.2)
            reply = client.control("shutdown_request")
            assert reply.msg_type == "shutdown_reply"
            assert reply.content == {"cancelled": [running]}
            outcome = client.wait(running, timeout=5)
            assert outcome.terminal is not None
            assert outcome.terminal.msg_type == "cancelled"
            assert outcome.terminal.content == {"reason": "shutdown"}
        assert rt.proc.wait(10) == 0
        assert not any(f.exists() for f in files)
    finally:
        rt.stop()


def test_tcp_signs_buffers() -> None:
    rt = spawn_runtime(["--address", "tcp"])
    try:
        assert rt.connection["request"].startswith("tcp://127.0.0.1:")
        assert rt.connection["signed_buffers"] is True
        with Client(rt.connection, rt.key) as client:
            assert client.hello()["signed_buffers"] is True
            t = torch.arange(100, dtype=torch.int16)
            assert torch.equal(client.call("echo", {"t": t})["t"], t)
            # a message whose buffers are not signed fails the signature on a runtime that
            # signs them: dropped unanswered and counted
            before = client.heartbeat()["dropped"]["bad_signature"]
            unsigned = Client(rt.connection, rt.key)
            unsigned.codec.signed_buffers = False
            unsigned.submit("echo", {"t": t})
            with pytest.raises(TimeoutError):
                unsigned.recv("request", timeout=0.5)
            unsigned.close()
            assert client.heartbeat()["dropped"]["bad_signature"] == before + 1
    finally:
        rt.stop()


INTERMEDIATE = textwrap.dedent(
    """
    import os, subprocess, sys, time
    proc = subprocess.Popen(
        [sys.executable, "-m", "nearpos_runtime", "serve", "--connection-file",
         sys.argv[1], "--key-stdin", "--remove-dir-on-exit"],
        stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proc.stdin.write(os.urandom(32).hex().encode() + b"\\n")
    proc.stdin.flush()
    print(proc.pid, flush=True)
    while True:
        time.sleep(1)
    """
)


@pytest.mark.parametrize("other_file", [False, True])
def test_runtime_dies_with_its_parent_and_removes_its_directory(other_file: bool) -> None:
    directory = private_dir()
    conn = directory / "connection.json"
    if other_file:  # not the runtime's: the directory must stay, with only this file in it
        (directory / "mine.txt").write_text("keep")
    parent = subprocess.Popen(
        [sys.executable, "-c", INTERMEDIATE, str(conn)], stdout=subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 60
        while not conn.exists():  # fully started: sockets bound, threads running
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.05)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(5)
        assert gone(pid, within=2.0)
        if other_file:
            assert sorted(p.name for p in directory.iterdir()) == ["mine.txt"]
        else:
            assert not directory.exists()
    finally:
        if parent.poll() is None:
            parent.kill()
        shutil.rmtree(directory, ignore_errors=True)


HOLDS_NO_STDIN = textwrap.dedent(
    """
    import subprocess, sys, time
    proc = subprocess.Popen(
        [sys.executable, "-m", "nearpos_runtime", "serve", "--connection-file",
         sys.argv[1], "--key-stdin", "--remove-dir-on-exit"],
        stdin=int(sys.argv[2]), stderr=subprocess.DEVNULL)
    print(proc.pid, flush=True)
    while True:
        time.sleep(1)
    """
)


def test_parent_death_signal_alone_cleans_up() -> None:
    # The test keeps the write end of the runtime's stdin: no end-of-file when the parent
    # dies, so only the parent-death signal (Linux) can stop the runtime.
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux only")
    directory = private_dir()
    conn = directory / "connection.json"
    read_end, write_end = os.pipe()
    os.write(write_end, os.urandom(32).hex().encode() + b"\n")
    parent = subprocess.Popen(
        [sys.executable, "-c", HOLDS_NO_STDIN, str(conn), str(read_end)],
        stdout=subprocess.PIPE,
        pass_fds=(read_end,),
    )
    os.close(read_end)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 60
        while not conn.exists():
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.05)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(5)
        assert gone(pid, within=2.0)
        assert not directory.exists()
    finally:
        os.close(write_end)
        if parent.poll() is None:
            parent.kill()
        shutil.rmtree(directory, ignore_errors=True)


def test_runtime_exits_on_stdin_eof() -> None:
    directory = private_dir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nearpos_runtime",
            "serve",
            "--connection-file",
            str(directory / "c.json"),
            "--key-stdin",
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write(os.urandom(32).hex().encode() + b"\n")
    proc.stdin.close()  # the parent is gone as far as the runtime can tell
    try:
        assert proc.wait(10) == 1
        assert b"stdin closed" in proc.stderr.read()
        assert directory.exists()  # without --remove-dir-on-exit the directory stays
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(directory, ignore_errors=True)


def test_stdin_eof_after_start_removes_sockets_file_and_directory() -> None:
    directory = private_dir()
    conn = directory / "c.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nearpos_runtime",
            "serve",
            "--connection-file",
            str(conn),
            "--key-stdin",
            "--remove-dir-on-exit",
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    proc.stdin.write(os.urandom(32).hex().encode() + b"\n")
    proc.stdin.flush()
    try:
        deadline = time.monotonic() + 60
        while not conn.exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        assert (directory / "request").exists() and (directory / "control").exists()
        proc.stdin.close()
        assert proc.wait(10) == 1
        assert not directory.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize(
    ("address", "allow", "ok"),
    [
        ("ipc", False, True),
        ("tcp", False, True),
        ("tcp://127.0.0.1", False, True),
        ("tcp://[::1]", False, True),
        ("tcp://0.0.0.0", False, False),
        ("tcp://10.1.2.3", False, False),
        ("tcp://10.1.2.3", True, True),
        ("tcp://example.org", True, False),
        ("udp", False, False),
    ],
)
def test_address_policy(address: str, allow: bool, ok: bool) -> None:
    if ok:
        plan = plan_address(address, allow)
        assert plan.remote == (address == "tcp://10.1.2.3")
    else:
        with pytest.raises(EndpointError):
            plan_address(address, allow)


def test_private_dir_and_key_file_permissions(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    directory.mkdir(mode=0o700)
    check_private_dir(directory)
    directory.chmod(0o750)
    with pytest.raises(EndpointError, match="0700"):
        check_private_dir(directory)
    key_file = tmp_path / "key"
    key_file.write_text("ab" * 32 + "\n")
    key_file.chmod(0o600)
    assert read_key_file(str(key_file)) == bytes([0xAB] * 32)
    key_file.chmod(0o640)
    with pytest.raises(KeyFileError, match="group or others"):
        read_key_file(str(key_file))
    key_file.chmod(0o600)
    key_file.write_text("xyz\n")
    with pytest.raises(KeyFileError, match="64 hex digits"):
        read_key_file(str(key_file))


def test_refuses_a_shared_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nearpos_runtime",
            "serve",
            "--connection-file",
            str(shared / "c.json"),
        ],
        env={**os.environ, "NEARPOS_KEY": "00" * 32},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "0700" in proc.stderr
    assert proc.stdout == ""
