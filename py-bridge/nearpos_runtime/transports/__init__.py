"""Front ends that move frames between a client and ``server.RuntimeCore``:
``zmq_io`` (ZeroMQ, the default) and ``pythonia_io`` (the pythonia fallback)."""
