"""Where the sockets bind, and the connection file that tells the client."""

from __future__ import annotations

import ipaddress
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from .protocol.version import TAG


class EndpointError(ValueError):
    """An address the runtime refuses, or an unsafe directory."""


@dataclass(frozen=True)
class AddressPlan:
    kind: str  # "ipc" or "tcp"
    host: str = ""  # tcp only
    remote: bool = False


def plan_address(address: str, allow_remote: bool) -> AddressPlan:
    """``ipc``, ``tcp`` (127.0.0.1) or ``tcp://HOST``; non-loopback needs ``allow_remote``."""
    if address == "ipc":
        return AddressPlan("ipc")
    if address == "tcp":
        return AddressPlan("tcp", "127.0.0.1")
    if address.startswith("tcp://"):
        host = address[len("tcp://") :].strip("[]")
        if host == "localhost":
            host = "127.0.0.1"
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            raise EndpointError(f"--address {address}: host must be an IP address") from None
        if not loopback and not allow_remote:
            raise EndpointError(
                f"--address {address} is not a loopback address; refusing without --allow-remote"
            )
        return AddressPlan("tcp", host, remote=not loopback)
    raise EndpointError(f"--address {address!r}: expected ipc, tcp or tcp://HOST")


def check_private_dir(directory: Path) -> None:
    st = os.stat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise EndpointError(f"{directory} is not a directory")
    if st.st_uid != os.getuid():
        raise EndpointError(f"{directory} is owned by another user")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise EndpointError(
            f"{directory} has mode {stat.S_IMODE(st.st_mode):o}; it must be 0700 (private)"
        )


def bind(socket: zmq.Socket[Any], plan: AddressPlan, directory: Path, name: str) -> str:
    """Bind ``socket`` per ``plan``; returns the endpoint a client connects to."""
    if plan.kind == "ipc":
        path = directory / name
        if len(str(path).encode()) > 100:  # sun_path holds ~107 bytes
            raise EndpointError(f"ipc path {path} is too long for a Unix socket; use a shorter dir")
        endpoint = f"ipc://{path}"
        socket.bind(endpoint)
        return endpoint
    if ":" in plan.host:
        socket.setsockopt(zmq.IPV6, 1)
        host = f"[{plan.host}]"
    else:
        host = plan.host
    port = socket.bind_to_random_port(f"tcp://{host}")
    return f"tcp://{host}:{port}"


def write_connection_file(path: Path, request: str, control: str, signed_buffers: bool) -> None:
    """Atomically (temporary file, then rename), mode 0600."""
    info = {
        "protocol": TAG.decode(),
        "request": request,
        "control": control,
        "pid": os.getpid(),
        "signed_buffers": signed_buffers,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(info, fh)
        fh.write("\n")
    os.replace(tmp, path)


def ipc_path(endpoint: str) -> Path | None:
    return Path(endpoint[len("ipc://") :]) if endpoint.startswith("ipc://") else None
