"""The model server's Open Inference Protocol v2 over gRPC, as a real process: NVIDIA Triton's gRPC client works
unchanged and gets the model's own predictions; every malformed request gets INVALID_ARGUMENT, NOT_FOUND or
RESOURCE_EXHAUSTED with a message (never INTERNAL), and the server keeps serving; gRPC requests count in the same
metrics and drift window as REST; forked workers share the gRPC port.

Requests the client library would refuse to build are sent with the protocol's own messages (tritonclient's
generated `service_pb2`): this process never imports the server's copy, which defines the same `inference` package."""

from __future__ import annotations

import concurrent.futures
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from modelfleet.artifact.sklearn_model import SklearnPredictor
from tests.datasets import feature_spec
from tests.runtime.test_server import Server, _children, artifacts, drift_gauges, rows

__all__ = ["artifacts"]  # the module's fixture, shared
FEATURES = feature_spec("breast_cancer")


@pytest.fixture(scope="module")
def server(artifacts: dict[str, Path]) -> Iterator[Server]:
    s = Server(artifacts["sklearn"], "--max-body-bytes", "200000", "--drift-min-rows", "20").wait_ready()
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def stub(server: Server) -> Iterator[Any]:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def triton_inputs(cols: dict[str, np.ndarray], n: int) -> list[Any]:
    inputs = []
    for f in FEATURES:
        if f["type"] == "categorical":
            inp = grpcclient.InferInput(f["name"], [n], "BYTES")
            inp.set_data_from_numpy(cols[f["name"]].astype(object))
        else:
            inp = grpcclient.InferInput(f["name"], [n], "FP64")
            inp.set_data_from_numpy(cols[f["name"]].astype(np.float64))
        inputs.append(inp)
    return inputs


def request(cols: dict[str, np.ndarray], *, raw: bool = True, **fields: Any) -> Any:
    """A ModelInferRequest for model "m" with one input per feature (raw contents, or typed ones)."""
    req = pb.ModelInferRequest(model_name="m", **fields)
    for f in FEATURES:
        values = cols[f["name"]]
        categorical = f["type"] == "categorical"
        tensor = req.inputs.add(name=f["name"], datatype="BYTES" if categorical else "FP64", shape=[len(values)])
        if raw:
            if categorical:
                encoded = [str(v).encode() for v in values]
                req.raw_input_contents.append(b"".join(struct.pack("<I", len(e)) + e for e in encoded))
            else:
                req.raw_input_contents.append(values.astype("<f8").tobytes())
        elif categorical:
            tensor.contents.bytes_contents.extend(str(v).encode() for v in values)
        else:
            tensor.contents.fp64_contents.extend(values.astype(np.float64).tolist())
    return req


def test_triton_grpc_client_gets_the_models_own_predictions(server: Server, artifacts: dict[str, Path]) -> None:
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("m")
    assert client.get_server_metadata().name == "modelfleet"
    meta = client.get_model_metadata("m")
    assert meta.name == "m" and [i.name for i in meta.inputs] == [f["name"] for f in FEATURES]
    assert [o.name for o in meta.outputs] == ["predict", "predict_proba"]
    cols = rows("breast_cancer", artifacts["bc"], 25)
    result = client.infer("m", triton_inputs(cols, 25), request_id="r-1")
    local = SklearnPredictor.load(artifacts["sklearn"], [(f["name"], f["type"]) for f in FEATURES])
    pred, proba = local.predict(cols)
    assert result.as_numpy("predict").tolist() == pred.tolist()
    np.testing.assert_allclose(result.as_numpy("predict_proba"), proba)
    assert result.get_response().id == "r-1" and result.get_response().model_name == "m"
    # Only the outputs asked for.
    only = client.infer("m", triton_inputs(cols, 25), outputs=[grpcclient.InferRequestedOutput("predict")])
    assert only.as_numpy("predict_proba") is None and only.as_numpy("predict").tolist() == pred.tolist()


def test_typed_contents_answer_as_raw_ones(stub: Any, artifacts: dict[str, Path]) -> None:
    cols = rows("breast_cancer", artifacts["bc"], 7)
    raw, typed = stub.ModelInfer(request(cols)), stub.ModelInfer(request(cols, raw=False))
    assert raw.raw_output_contents == typed.raw_output_contents
    assert [(o.name, o.datatype, list(o.shape)) for o in raw.outputs] == [
        ("predict", "INT64", [7]),
        ("predict_proba", "FP64", [7, 2]),
    ]


def _bad(cols: dict[str, np.ndarray]) -> list[tuple[str, Any, grpc.StatusCode, str]]:
    def edited(change: Any, **fields: Any) -> Any:
        req = request(cols, **fields)
        change(req)
        return req

    def nan(req: Any) -> None:
        values = np.frombuffer(req.raw_input_contents[0], dtype="<f8").copy()
        values[0] = np.nan
        req.raw_input_contents[0] = values.tobytes()

    # 10,010 rows (over the server's 10,000) in the first input: refused before the rest is read.
    many = pb.ModelInferRequest(model_name="m", raw_input_contents=[np.zeros(10_010).tobytes()])
    many.inputs.add(name=FEATURES[0]["name"], datatype="FP64", shape=[10_010])
    return [
        ("unknown model", edited(lambda r: setattr(r, "model_name", "other")), grpc.StatusCode.NOT_FOUND, "'other'"),
        ("unknown version", edited(lambda r: setattr(r, "model_version", "9")), grpc.StatusCode.NOT_FOUND, "'9'"),
        ("no inputs", pb.ModelInferRequest(model_name="m"), grpc.StatusCode.INVALID_ARGUMENT, "non-empty"),
        (
            "raw contents for fewer inputs",
            edited(lambda r: r.raw_input_contents.pop()),
            grpc.StatusCode.INVALID_ARGUMENT,
            "raw_input_contents has 30 entries for 31 inputs",
        ),
        (
            "raw bytes that are no whole number of elements",
            edited(lambda r: r.raw_input_contents.__setitem__(0, b"\x00" * 13)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "13 raw bytes are not a whole number of FP64 elements",
        ),
        (
            "a raw BYTES element running past the contents",
            edited(lambda r: r.raw_input_contents.__setitem__(30, struct.pack("<I", 99) + b"ab")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "runs past the contents",
        ),
        (
            "an unknown datatype",
            edited(lambda r: setattr(r.inputs[0], "datatype", "FP128")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown datatype 'FP128'",
        ),
        (
            "shape and data disagree",
            edited(lambda r: r.inputs[0].shape.__setitem__(0, 11)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "do not match shape [11]",
        ),
        ("a NaN", edited(nan), grpc.StatusCode.INVALID_ARGUMENT, "NaN and infinite values are not allowed"),
        (
            "an unknown input",
            edited(lambda r: setattr(r.inputs[0], "name", "nope")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown input 'nope'",
        ),
        (
            "an unknown output",
            edited(lambda r: r.outputs.add(name="logits")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown output(s) 'logits'",
        ),
        (
            "BYTES that are not UTF-8",
            edited(lambda r: r.raw_input_contents.__setitem__(30, b"".join([struct.pack("<I", 1) + b"\xff"] * 10))),
            grpc.StatusCode.INVALID_ARGUMENT,
            "must be UTF-8",
        ),
        ("too many rows", many, grpc.StatusCode.RESOURCE_EXHAUSTED, "at most 10000 per request"),
    ]


def test_malformed_requests_get_a_client_error_with_a_message_and_the_server_keeps_serving(
    stub: Any, artifacts: dict[str, Path]
) -> None:
    cols = rows("breast_cancer", artifacts["bc"], 10)
    for case, req, code, message in _bad(cols):
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(req, timeout=10)
        assert (caught.value.code(), message in (caught.value.details() or "")) == (code, True), (case, caught.value)
    # A message over the server's limit (--max-body-bytes 200000) is refused by gRPC itself.
    huge = request({k: np.repeat(v, 100) for k, v in cols.items()})
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(huge, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelMetadata(pb.ModelMetadataRequest(name="other"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert stub.ModelInfer(request(cols), timeout=10).outputs[0].name == "predict"


def test_grpc_requests_count_in_the_metrics_and_the_drift_window(server: Server, artifacts: dict[str, Path]) -> None:
    cols = rows("breast_cancer", artifacts["bc"], 10)
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")

    def counted(code: str) -> float:
        for line in server.get("/metrics")[1].splitlines():
            if line.startswith(f'modelfleet_server_requests_total{{code="{code}",model="m"}}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before_ok, before_bad = counted("200"), counted("422")
    window_before, _ = drift_gauges(server)
    for _ in range(3):
        client.infer("m", triton_inputs(cols, 10))
    with pytest.raises(grpcclient.InferenceServerException):
        client.infer("m", triton_inputs(cols, 10)[:5])
    assert (counted("200") - before_ok, counted("422") - before_bad) == (3, 1)
    time.sleep(0.6)  # the window is published every 0.25 s
    window_after, values = drift_gauges(server)
    assert window_after - max(window_before, 0) == 30 and values


def test_forked_workers_share_the_grpc_port(artifacts: dict[str, Path]) -> None:
    server = Server(artifacts["sklearn"], "--workers", "2").wait_ready()
    try:
        deadline = time.monotonic() + 10
        while len(_children(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_children(server.proc.pid)) == 2
        cols = rows("breast_cancer", artifacts["bc"], 5)
        target = f"127.0.0.1:{server.grpc_port}"
        deadline = time.monotonic() + 10  # the second worker binds the port a moment after it is forked
        while True:
            try:
                grpcclient.InferenceServerClient(url=target).infer("m", triton_inputs(cols, 5))
                break
            except grpcclient.InferenceServerException:
                assert time.monotonic() < deadline
                time.sleep(0.1)

        def one(_: int) -> int:
            # A channel each: a new connection is spread over the workers by the kernel (SO_REUSEPORT).
            client = grpcclient.InferenceServerClient(url=target)
            return len(client.infer("m", triton_inputs(cols, 5)).as_numpy("predict"))

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert list(pool.map(one, range(40))) == [5] * 40
        total = [
            ln for ln in server.get("/metrics")[1].splitlines() if ln.startswith("modelfleet_server_requests_total")
        ]
        assert 'modelfleet_server_requests_total{code="200",model="m"} 41.0' in total
    finally:
        assert server.stop() == 0


def test_a_grpc_port_already_taken_stops_the_server_with_one_line(artifacts: dict[str, Path]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = Server(artifacts["sklearn"], "--grpc-port", str(port))  # the later flag wins over the free one
        code = server.proc.wait(timeout=60)
    out = server.proc.stdout.read() if server.proc.stdout else ""
    assert code == 2 and f"modelfleet-server: error: cannot listen for gRPC on 127.0.0.1:{port}" in out
    assert "Traceback" not in out
