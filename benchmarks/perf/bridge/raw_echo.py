"""A bare pyzmq ROUTER that sends every message straight back: no signing, no JSON, no
threads beyond ZeroMQ's own. The bridge benchmark times a zeromq.js DEALER against it to
show the floor that any protocol on these two libraries starts from.

Usage: python raw_echo.py ENDPOINT   (exits when its stdin closes)
"""

from __future__ import annotations

import sys
import threading

import zmq


def main() -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(sys.argv[1])
    threading.Thread(target=lambda: (sys.stdin.read(), ctx.term()), daemon=True).start()
    print("ready", flush=True)
    try:
        while True:
            sock.send_multipart(sock.recv_multipart(copy=False), copy=False)
    except zmq.ContextTerminated:
        sock.close()


if __name__ == "__main__":
    main()
