"""Runs moto (SQS, SNS, S3) on 127.0.0.1 with a free port.

Prints one JSON line {"url": ...} when ready and exits when its standard input closes, so a
test process that dies never leaves it behind.
"""

import json
import logging
import sys

from moto.server import ThreadedMotoServer


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(json.dumps({"url": f"http://{host}:{port}"}), flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
