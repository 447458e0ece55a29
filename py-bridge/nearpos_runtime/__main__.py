"""Command line: ``serve`` (the runtime) and ``schema`` (print schemas as JSON)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .lifecycle import (
    exit_now,
    exit_on_stdin_eof,
    parent_gone,
    remove_dir_on_exit,
    remove_on_exit,
    set_parent_death_signal,
    setup_logging,
    stdout_to_stderr,
)

if TYPE_CHECKING:
    from .endpoints import AddressPlan
    from .transports.zmq_io import ZmqServer

log = logging.getLogger("nearpos_runtime")
# Exit status when serving stopped because of a failure of the runtime itself (a bug).
EXIT_FAULT = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nearpos_runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the protocol (docs/protocol.md)")
    serve.add_argument(
        "--connection-file",
        required=True,
        type=Path,
        help="where to write the endpoints; its directory must be mode 0700",
    )
    keys = serve.add_mutually_exclusive_group()
    keys.add_argument(
        "--key-stdin",
        action="store_true",
        help="read the key (64 hex digits) from the first line of stdin; exit when stdin closes",
    )
    serve.add_argument(
        "--remove-dir-on-exit",
        action="store_true",
        help="also remove the connection file's directory (when empty) on exit",
    )
    keys.add_argument("--key-file", help="read the key from a file readable by its owner only")
    serve.add_argument(
        "--address",
        default="ipc",
        help="ipc (default), tcp (127.0.0.1, ephemeral ports) or tcp://HOST",
    )
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback tcp address (forces signed buffers)",
    )
    serve.add_argument(
        "--signed-buffers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sign tensor frames too (default: off on ipc, on on tcp)",
    )
    serve.add_argument(
        "--max-message-bytes",
        type=int,
        default=4 * 1024**3,
        help="drop incoming messages larger than this (default 4 GiB)",
    )
    serve.add_argument("--workers", type=int, default=2, help="worker threads for calls (2)")
    serve.add_argument("--log-level", default="INFO", help="logging level (INFO)")
    sub.add_parser("schema", help="print method params and plugin config schemas as JSON")
    return parser


def _read_key(args: argparse.Namespace) -> bytes:
    from .keys import KEY_ENV, KeyFileError, read_key_env, read_key_file, read_key_stdin

    if args.key_stdin:
        return read_key_stdin()
    if args.key_file:
        return read_key_file(args.key_file)
    key = read_key_env()
    if key is None:
        raise KeyFileError(f"no key: pass --key-stdin or --key-file, or set {KEY_ENV}")
    return key


def serve(args: argparse.Namespace) -> int:
    """Serve until a shutdown request or a signal; 2 for bad arguments (then it returns),
    otherwise the process exits from :func:`_stop`."""
    ppid = os.getppid()
    ready = _prepare(args, ppid)
    if isinstance(ready, int):
        return ready
    key, plan, conn_file = ready
    started = _start(args, key, plan, conn_file)
    if isinstance(started, int):
        return started
    server, cleanup = started
    _handle_signals(args, server, ppid)
    while not server.stopped.wait(0.5):
        pass
    _stop(args, server, cleanup, conn_file)


def _prepare(args: argparse.Namespace, ppid: int) -> tuple[bytes, AddressPlan, Path] | int:
    """The key, the address plan and the connection file, checked; 2 when one is bad."""
    try:
        key = _read_key(args)
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 2
    if args.remove_dir_on_exit:
        remove_dir_on_exit(args.connection_file.absolute().parent)
    if args.key_stdin:
        exit_on_stdin_eof()
        set_parent_death_signal(ppid)

    from .endpoints import EndpointError, check_private_dir, plan_address

    if args.workers < 1 or args.max_message_bytes < 1:
        log.error("--workers and --max-message-bytes must be positive")
        return 2
    conn_file: Path = args.connection_file.absolute()
    try:
        plan = plan_address(args.address, args.allow_remote)
        check_private_dir(conn_file.parent)
    except (EndpointError, OSError) as exc:
        log.error("%s", exc)
        return 2
    return key, plan, conn_file


def _start(
    args: argparse.Namespace, key: bytes, plan: AddressPlan, conn_file: Path
) -> tuple[ZmqServer, list[Path]] | int:
    """Bind, start the server, write the connection file; the paths to remove at the end,
    or 2 when binding failed."""
    import zmq  # heavy imports (torch) only once the arguments are known to be good

    from .endpoints import EndpointError, bind, ipc_path, write_connection_file
    from .transports.zmq_io import ZmqServer

    signed = plan.kind == "tcp" if args.signed_buffers is None else args.signed_buffers
    if plan.remote and not signed:
        log.warning("remote address: signed buffers forced on")
        signed = True

    from . import methods  # noqa: F401  (registers the built-in methods)

    server = ZmqServer(
        key, signed_buffers=signed, max_message_bytes=args.max_message_bytes, workers=args.workers
    )
    try:
        request = bind(server.request, plan, conn_file.parent, "request")
        control = bind(server.control, plan, conn_file.parent, "control")
    except (EndpointError, zmq.ZMQError) as exc:
        log.error("cannot bind: %s", exc)
        return 2
    cleanup = [p for p in (ipc_path(request), ipc_path(control)) if p is not None]
    remove_on_exit([*cleanup, conn_file])
    server.start()
    write_connection_file(conn_file, request, control, signed)
    cleanup.append(conn_file)
    log.info(
        "serving on %s and %s (pid %d, signed_buffers=%s, workers=%d)",
        request,
        control,
        os.getpid(),
        signed,
        args.workers,
    )
    return server, cleanup


def _handle_signals(args: argparse.Namespace, server: ZmqServer, ppid: int) -> None:
    """SIGTERM and SIGINT request a graceful shutdown."""

    def on_signal(sig: int, _frame: object) -> None:
        if args.key_stdin and sig == signal.SIGTERM and parent_gone(ppid):
            # The parent-death signal: no one to reply to, clean up and go at once.
            exit_now(1, "parent gone, exiting")
        server.request_shutdown()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)


def _stop(
    args: argparse.Namespace, server: ZmqServer, cleanup: list[Path], conn_file: Path
) -> NoReturn:
    """Close, remove what serving created, and exit (EXIT_FAULT after an internal failure)."""
    from .server import remove_paths

    server.close()
    remove_paths(cleanup)
    if args.remove_dir_on_exit:
        try:
            conn_file.parent.rmdir()
        except OSError:
            pass  # not empty: something else lives there
    if server.failed:
        log.error("stopped after an internal failure (see above); exit status %d", EXIT_FAULT)
    else:
        log.info("stopped")
    logging.shutdown()
    # Worker threads stuck in a method must not keep the process alive.
    os._exit(EXIT_FAULT if server.failed else 0)


def schema() -> int:
    real_stdout = os.dup(1)
    stdout_to_stderr()  # plugins that print on import must not corrupt the JSON
    from . import methods  # noqa: F401
    from .info import schemas

    data = json.dumps(schemas(), indent=2, sort_keys=False) + "\n"
    with os.fdopen(real_stdout, "w", encoding="utf-8") as out:
        out.write(data)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(getattr(logging, str(getattr(args, "log_level", "INFO")).upper(), logging.INFO))
    if args.command == "serve":
        stdout_to_stderr()
        return serve(args)
    return schema()


if __name__ == "__main__":
    sys.exit(main())
