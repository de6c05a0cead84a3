"""A SigV4-verifying reverse proxy in front of the search stand-in, for the SigV4 tests.

Checks every request's AWS Signature Version 4 with botocore's own signer (an implementation
independent of the worker's): it rebuilds the canonical request from what arrived (method,
path, query, the headers named in SignedHeaders, the body bytes as received, compressed or
not), signs it with the secret of the access key named in the Authorization header, and
compares. It also checks the credential scope (date, region, service), that x-amz-date is
within 5 minutes, that x-amz-content-sha256 is the body's hash, and that a session token is
the one issued with the key. A request that passes is forwarded to the upstream unchanged;
one that does not is answered 403 with the body Amazon OpenSearch Service sends in that case.

Usage: sigv4_proxy.py UPSTREAM_URL REGION SERVICE KEYS_JSON [search|timeseries]
  KEYS_JSON: {"ACCESS_KEY": {"secret": "...", "token": null or "..."}, ...}
  search|timeseries: answer as an OpenSearch Serverless collection of that type does where it
  differs from a domain: `GET /` is 404 with an empty body; a time series collection refuses
  every bulk item that carries an `_id` (400 illegal_argument_exception, "Document ID is not
  supported in create/index operation request").

Prints one JSON line {"url": ...} when ready. Counts go to GET /_sigv4_proxy/stats (answered
by the proxy itself, unsigned): {"verified": N, "refused": N, "keys": {...: N}, "gzip": N}.
Exits when its standard input closes.
"""

import datetime
import gzip
import hashlib
import json
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

UPSTREAM, REGION, SERVICE, KEYS = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
COLLECTION = sys.argv[5] if len(sys.argv) > 5 else None
LOCK = threading.Lock()
STATS = {"verified": 0, "refused": 0, "keys": {}, "gzip": 0, "reasons": {}, "root": 0}
NO_ID = "Document ID is not supported in create/index operation request"

BAD_SIGNATURE = ("The request signature we calculated does not match the signature you provided. "
                 "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
BAD_TOKEN = "The security token included in the request is invalid."
MISSING = "Missing Authentication Token"


def refuse(reason):
    raise PermissionError(reason)


def verify(method, target, headers, body):
    """Raises PermissionError(message) unless the request is correctly signed; returns the key."""
    auth = headers.get("authorization")
    if not auth:
        refuse(MISSING)
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        refuse(BAD_SIGNATURE)
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    key, date, region, service, terminal = fields["Credential"].split("/")
    if key not in KEYS:
        refuse(BAD_TOKEN)
    if region != REGION or service != SERVICE or terminal != "aws4_request":
        refuse(BAD_SIGNATURE)
    amz_date = headers.get("x-amz-date", "")
    when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    now = datetime.datetime.now(datetime.timezone.utc)
    if abs((now - when).total_seconds()) > 300 or not amz_date.startswith(date):
        refuse(f"Signature expired: {amz_date} is now earlier than {now:%Y%m%dT%H%M%SZ} - 5 min.")
    if headers.get("x-amz-content-sha256") != hashlib.sha256(body).hexdigest():
        refuse(BAD_SIGNATURE)
    secret, token = KEYS[key]["secret"], KEYS[key].get("token")
    if headers.get("x-amz-security-token") != token:
        refuse(BAD_TOKEN)
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed:
        refuse(BAD_SIGNATURE)
    request = AWSRequest(method=method, url=f"http://{headers['host']}{target}",
                         headers={name: headers[name] for name in signed if name in headers}, data=body)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(key, secret, token), SERVICE, REGION)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != fields["Signature"]:
        refuse(BAD_SIGNATURE)
    return key


def refuse_ids(body, headers):
    """A time series collection's answer to a bulk body whose actions carry `_id`s."""
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    lines = [line for line in body.split(b"\n") if line.strip()]
    items = []
    for action in lines[0::2]:
        (name, meta), = json.loads(action).items()
        if "_id" in meta:
            items.append({name: {"status": 400, "error": {"type": "illegal_argument_exception", "reason": NO_ID}}})
        else:
            items.append({name: {"status": 201}})
    return {"took": 0, "errors": any(i[n]["status"] >= 400 for i in items for n in i), "items": items}


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/_sigv4_proxy/stats":
            with LOCK:
                return self.answer(200, json.dumps(STATS))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            key = verify(self.command, self.path, headers, body)
        except (PermissionError, KeyError, ValueError) as err:
            reason = err.args[0] if isinstance(err, PermissionError) else BAD_SIGNATURE
            with LOCK:
                STATS["refused"] += 1
                STATS["reasons"][reason] = STATS["reasons"].get(reason, 0) + 1
            field = "Message" if reason == MISSING else "message"
            return self.answer(403, json.dumps({field: reason}))
        with LOCK:
            STATS["verified"] += 1
            STATS["keys"][key] = STATS["keys"].get(key, 0) + 1
            STATS["gzip"] += headers.get("content-encoding") == "gzip"
            STATS["root"] += self.path == "/"
        if COLLECTION and self.command == "GET" and self.path == "/":
            return self.answer(404, b"")
        if COLLECTION == "timeseries" and self.path.startswith("/_bulk"):
            return self.answer(200, json.dumps(refuse_ids(body, headers)))
        forward = {name: value for name, value in headers.items()
                   if name in ("content-type", "content-encoding", "accept")}
        request = urllib.request.Request(UPSTREAM + self.path, data=body if body else None,
                                         method=self.command, headers=forward)
        try:
            with urllib.request.urlopen(request) as response:
                status, data, kind = response.status, response.read(), response.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as err:
            status, data, kind = err.code, err.read(), err.headers.get("Content-Type", "application/json")
        self.answer(status, data, kind)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = urlsplit(f"http://127.0.0.1:{server.server_address[1]}").netloc.split(":")
    print(json.dumps({"url": f"http://{host}:{port}"}), flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
