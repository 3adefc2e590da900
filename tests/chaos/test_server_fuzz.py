"""Hostile input to the model server, as a real process: 10,000 hypothesis-generated requests over every endpoint
(random JSON, wrong types, huge shapes, deep nesting, invalid UTF-8, unknown paths and methods) and slow bodies sent a
byte at a time: never a 5xx, memory back near its level, and a good request answered throughout. Artifacts with
hostile contents (a symbolic link, an oversized side file) are refused before anything is loaded."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.datasets import feature_spec
from tests.runtime.test_server import Server, artifacts, rows, v2_inputs  # noqa: F401  (artifacts: the fixture)

REQUESTS = 10_000
FEATURES = [f["name"] for f in feature_spec("breast_cancer")]

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from([*FEATURES[:3], "nope", ""]) | scalars,
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BYTES", "BOOL", "FP16", "UINT8", "junk"]) | scalars,
        "shape": st.lists(st.integers(-3, 10**15), max_size=3) | json_values,
        "data": st.lists(st.floats() | st.integers() | st.text(max_size=4), max_size=12) | json_values,
    },
    optional={"parameters": json_values},
)
infer_bodies = st.fixed_dictionaries(
    {"inputs": st.lists(tensor, max_size=4) | json_values}, optional={"id": json_values, "outputs": json_values}
)
DEEP = [b"[" * 100_000, b'{"inputs":' * 50_000, b'{"inputs":[{"data":' + b"[" * 5_000 + b"]" * 5_000 + b"}]}"]
bodies = (
    infer_bodies.map(lambda b: json.dumps(b, allow_nan=True).encode())
    | json_values.map(lambda b: json.dumps(b, allow_nan=True).encode())
    | st.binary(max_size=300)  # invalid UTF-8 among them
    | st.sampled_from(DEEP)
)
paths = st.sampled_from(
    [
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/m",
        "/v2/models/m/ready",
        "/v2/models/m/infer",
        "/v2/models/m/versions/1/infer",
        "/v2/models/other/infer",
        "/metrics",
        "/",
    ]
) | st.text(alphabet="abcz/%.-_~?=&", max_size=40).map(lambda t: "/v2/models/" + t)
methods = st.sampled_from(["GET", "POST", "POST", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"])
# Three requests in four go to the inference endpoint, where the parsing is; the rest anywhere, any method.
targeted = st.tuples(st.just("POST"), st.just("/v2/models/m/infer"), bodies)
anywhere = st.tuples(methods, paths, st.none() | bodies)
requests = st.sampled_from(["infer", "infer", "infer", "any"]).flatmap(lambda k: targeted if k == "infer" else anywhere)


class Client:
    """One keep-alive connection, reopened when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send(self, method: str, path: str, body: bytes | None) -> int:
        for attempt in range(2):
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.reconnect()
                return resp.status
            except (http.client.HTTPException, ConnectionError):
                self.reconnect()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def reconnect(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)


def rss_kib(pgid: int) -> int:
    """Resident memory of every process in the server's process group (it may fork workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                status = (stat.parent / "status").read_text()
                total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        except (OSError, ValueError, StopIteration):
            continue
    return total


def trickle(port: int, seconds: float) -> None:
    """A body announced at 4,096 bytes and sent one byte every 50 ms, then abandoned."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        s.sendall(b"Content-Length: 4096\r\n\r\n")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                s.sendall(b"[")
            except OSError:
                return  # the server gave up on it: fine
            time.sleep(0.05)


@pytest.fixture(scope="module")
def server(artifacts: dict[str, Path]) -> Any:  # noqa: F811
    srv = Server(artifacts["sklearn"], "--max-body-bytes", "1000000").wait_ready()
    yield srv
    srv.stop()


def test_ten_thousand_hostile_requests_get_no_5xx_and_leave_memory_where_it_was(
    server: Server,
    artifacts: dict[str, Path],  # noqa: F811
) -> None:
    good = json.dumps(v2_inputs(rows("breast_cancer", artifacts["bc"], 5))).encode()
    client = Client(server.port)
    for _ in range(300):  # warm: allocator pools, first-request caches
        assert client.send("POST", "/v2/models/m/infer", good) == 200
    before = rss_kib(server.proc.pid)
    codes: Counter[int] = Counter()
    slow = [threading.Thread(target=trickle, args=(server.port, 4.0)) for _ in range(8)]
    for t in slow:
        t.start()

    @settings(
        max_examples=REQUESTS,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=requests)
    def hostile(request: tuple[str, str, bytes | None]) -> None:
        method, path, body = request
        code = client.send(method, path, body)
        codes[code] += 1
        assert code < 500, (method, path, body[:200] if body else body)
        if sum(codes.values()) % 500 == 0:  # a good request is answered all along, slow bodies or not
            assert client.send("POST", "/v2/models/m/infer", good) == 200

    started = time.monotonic()
    hostile()
    took = time.monotonic() - started
    for t in slow:
        t.join(timeout=30)
    after = rss_kib(server.proc.pid)
    print(f"{sum(codes.values())} requests in {took:.0f}s: {dict(sorted(codes.items()))}; RSS {before} -> {after} KiB")
    assert sum(codes.values()) >= REQUESTS
    assert after - before < 40 * 1024, (before, after)  # back near its level (allocator slack allowed)
    assert Client(server.port).send("POST", "/v2/models/m/infer", good) == 200
    assert server.proc.poll() is None


def refused(artifact: Path) -> str:
    srv = Server(artifact)
    assert srv.proc.wait(timeout=60) == 2
    return srv.proc.stdout.read() if srv.proc.stdout else ""


def test_an_artifact_with_a_symbolic_link_is_refused_before_loading(
    artifacts: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    from modelfleet.artifact.digest import DIGEST_FILE, directory_digest

    copy = tmp_path / "linked"
    shutil.copytree(artifacts["sklearn"], copy)
    (copy / "model.skops").unlink()
    (copy / "model.skops").symlink_to(artifacts["sklearn"] / "model.skops")  # anywhere on the node
    (copy / DIGEST_FILE).write_text(directory_digest(copy) + "\n")  # a digest that vouches for the link's target
    assert "symbolic links are not allowed" in refused(copy)


def test_an_oversized_side_file_is_refused_before_it_is_parsed(
    artifacts: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    from modelfleet.artifact.digest import DIGEST_FILE, MAX_SIDE_FILE_BYTES, directory_digest

    copy = tmp_path / "huge"
    shutil.copytree(artifacts["sklearn"], copy)
    with (copy / "metadata.json").open("ab") as f:
        f.write(b" " * (MAX_SIDE_FILE_BYTES + 1))
    (copy / DIGEST_FILE).write_text(directory_digest(copy) + "\n")
    assert "more than" in refused(copy)
