"""The client's retry policy, exercised over real loopback HTTP (no cluster semantics involved:
the answers are scripted status codes, the point is what the client does with them)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import Client
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ApiError, ClusterUnreachable


@pytest.fixture
def scripted():
    """An HTTP server answering from a script of (status, body) pairs, recording requests."""
    script, seen = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.path)
            status, body = script.pop(0) if script else (200, {"ok": True})
            if status == "reset":
                self.connection.close()
                return
            payload = json.dumps(body).encode()
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", script, seen
    server.shutdown()


def make(url, retries=4):
    return Client({"host": url, "kubeconfig": None}, retries=retries, backoff=0.001)


def test_retries_429_and_5xx_then_succeeds(scripted):
    url, script, seen = scripted
    script += [(429, {}), (503, {}), (500, {}), (200, {"items": [1]})]
    assert make(url).request("GET", "/api/v1/pods") == {"items": [1]}
    assert len(seen) == 4


def test_gives_up_after_retries_with_the_server_message(scripted):
    url, script, seen = scripted
    script += [(503, {"message": "etcd leader changed", "reason": "ServiceUnavailable"})] * 10
    with pytest.raises(ApiError) as exc:
        make(url, retries=2).request("GET", "/x")
    assert exc.value.status == 503 and "etcd leader changed" in exc.value.message
    assert len(seen) == 3


def test_client_errors_are_not_retried(scripted):
    url, script, seen = scripted
    script += [(422, {"message": "bad", "reason": "Invalid"})]
    with pytest.raises(ApiError):
        make(url).request("GET", "/x")
    assert len(seen) == 1


def test_connection_resets_are_retried(scripted):
    url, script, seen = scripted
    script += [("reset", None), ("reset", None), (200, {"ok": 1})]
    assert make(url).request("GET", "/x") == {"ok": 1}


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(ClusterUnreachable, match="the API server http://127.0.0.1:9 cannot be reached"):
        make("http://127.0.0.1:9", retries=1).request("GET", "/x")


def test_a_server_that_went_away_fails_every_later_request_at_once():
    client = make("http://127.0.0.1:9", retries=3)
    with pytest.raises(ClusterUnreachable):
        client.request("GET", "/x")
    sent = sum(client.counts.values())
    assert sent == 4 and client.gone
    for path in ("/y", "/z"):  # other workers' requests: no attempts of their own
        with pytest.raises(ClusterUnreachable, match="cannot be reached"):
            client.request("GET", path)
    assert sum(client.counts.values()) == sent


def test_throttling_is_waited_out_beyond_the_retry_count_within_the_budget(scripted):
    url, script, seen = scripted
    script += [(429, {})] * 12 + [(200, {"ok": 1})]
    assert make(url, retries=2).request("GET", "/x") == {"ok": 1}
    assert len(seen) == 13
    script += [(503, {})] * 12
    with pytest.raises(ApiError):
        make(url, retries=2).request("GET", "/x")


def test_the_request_budget_bounds_connection_retries():
    client = Client({"host": "http://127.0.0.1:9", "kubeconfig": None, "request_timeout": 0.5}, retries=50, backoff=0.2)
    with pytest.raises(ClusterUnreachable, match=r"tried \d+ times in 0s"):
        client.request("GET", "/x")
    assert sum(client.counts.values()) < 10


def test_a_server_that_closes_during_the_tls_handshake_is_a_dropped_connection():
    """What a dying apiserver does: its port still accepts, then the TLS handshake ends (EOF).
    That is retried and ends as "cannot be reached" naming the cluster, not a final TLS failure."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []

    def close_every_connection():
        while True:
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    threading.Thread(target=close_every_connection, daemon=True).start()
    try:
        client = Client({"host": f"https://127.0.0.1:{listener.getsockname()[1]}", "kubeconfig": None,
                         "validate_certs": False}, retries=3, backoff=0.001)
        with pytest.raises(ClusterUnreachable, match="cannot be reached") as caught:
            client.request("GET", "/x")
        assert "TLS failed" not in str(caught.value) and client.gone and len(accepted) == 4
    finally:
        listener.close()
