"""The Open Inference Protocol v2 over gRPC (`inference.GRPCInferenceService`), beside REST in the same process: the
same model, the same validation (requests are decoded into the REST form and go through `parse_v2`), the same
micro-batcher, metrics and drift window.

Client mistakes map to gRPC codes as the REST statuses do (400/422 INVALID_ARGUMENT, 404 NOT_FOUND, 413 and an
oversized message RESOURCE_EXHAUSTED, 503 UNAVAILABLE), each with the REST message; INTERNAL is left for real
faults. Requests are counted in `modelfleet_server_requests_total` under the HTTP status they map to, so the
activity and error-ratio queries cover both protocols.

Outputs go back as `raw_output_contents` (little-endian, row-major; BYTES length-prefixed), as Triton answers: a
numpy buffer is copied once instead of element by element."""

from __future__ import annotations

import struct
from typing import Any, NoReturn

import grpc
import numpy as np
from aiohttp import web

from modelfleet.server.app import METRICS_KEY, MODEL_KEY, ServerMetrics, run_model, served
from modelfleet.server.grpc_v2 import open_inference_pb2 as pb
from modelfleet.server.grpc_v2 import open_inference_pb2_grpc as pb_grpc
from modelfleet.server.model import ServedModel
from modelfleet.server.protocol import BadRequest, metadata, parse_v2

GRPC_KEY: web.AppKey[Any] = web.AppKey("grpc", object)

CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}
RAW_DTYPES = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _strings(values: list[bytes], name: str) -> np.ndarray:
    try:
        return np.asarray([v.decode("utf-8") for v in values], dtype=object)
    except UnicodeDecodeError as e:
        raise BadRequest(f"input {name!r}: BYTES elements must be UTF-8 ({e})", 422) from e


def _raw_bytes(buffer: bytes, name: str) -> np.ndarray:
    """BYTES raw contents: each element a 4-byte little-endian length, then its bytes."""
    values, at = [], 0
    while at < len(buffer):
        if at + 4 > len(buffer):
            raise BadRequest(f"input {name!r}: raw BYTES contents end inside an element's length", 422)
        (size,) = struct.unpack_from("<I", buffer, at)
        if at + 4 + size > len(buffer):
            raise BadRequest(f"input {name!r}: a raw BYTES element of {size} bytes runs past the contents", 422)
        values.append(buffer[at + 4 : at + 4 + size])
        at += 4 + size
    return _strings(values, name)


def decode_inputs(request: Any) -> dict[str, Any]:
    """A ModelInferRequest as the REST body `parse_v2` checks (data as arrays): one validation for both protocols."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs")
    inputs = []
    for i, tensor in enumerate(request.inputs):
        name, datatype = tensor.name, tensor.datatype
        data: Any
        if raw:
            if datatype == "BYTES":
                data = _raw_bytes(raw[i], name)
            elif datatype in RAW_DTYPES:
                dtype = np.dtype(RAW_DTYPES[datatype])
                if len(raw[i]) % dtype.itemsize:
                    raise BadRequest(
                        f"input {name!r}: {len(raw[i])} raw bytes are not a whole number of {datatype} elements", 422
                    )
                data = np.frombuffer(raw[i], dtype=dtype)
            else:
                raise BadRequest(f"input {name!r}: unknown datatype {datatype!r}", 422)
        else:
            field = CONTENTS_FIELDS.get(datatype)
            if field is None:
                raise BadRequest(f"input {name!r}: datatype {datatype!r} has no typed contents (send it raw)", 422)
            values = getattr(tensor.contents, field)
            data = _strings(list(values), name) if datatype == "BYTES" else np.asarray(values)
        inputs.append({"name": name, "shape": [int(d) for d in tensor.shape], "datatype": datatype, "data": data})
    body: dict[str, Any] = {"inputs": inputs}
    if request.id:
        body["id"] = request.id
    return body


def _raw_output(values: np.ndarray) -> tuple[str, bytes]:
    if values.dtype.kind in "iub":
        return "INT64", values.astype("<i8").tobytes()
    if values.dtype.kind == "f":
        return "FP64", values.astype("<f8").tobytes()
    encoded = [str(v).encode() for v in values.ravel()]
    return "BYTES", b"".join(struct.pack("<I", len(e)) + e for e in encoded)


def requested_outputs(model: ServedModel, request: Any) -> list[str]:
    """The outputs to send back (all when none is named), checked before anything is predicted."""
    known = [o["name"] for o in metadata(model)["outputs"]]
    wanted = [o.name for o in request.outputs] or known
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise BadRequest(f"unknown output(s) {', '.join(map(repr, unknown))}; this model has {', '.join(known)}", 422)
    return wanted


def infer_response(
    model: ServedModel, pred: np.ndarray, proba: np.ndarray | None, request: Any, wanted: list[str]
) -> Any:
    outputs = {"predict": np.asarray(pred)}
    if proba is not None:
        outputs["predict_proba"] = np.asarray(proba, dtype=np.float64)
    response = pb.ModelInferResponse(model_name=model.name, model_version=model.version, id=request.id)
    for name in (n for n in wanted if n in outputs):  # a classifier without probabilities answers predict only
        datatype, raw = _raw_output(outputs[name])
        response.outputs.add(name=name, datatype=datatype, shape=list(outputs[name].shape))
        response.raw_output_contents.append(raw)
    return response


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, app: web.Application) -> None:
        self.app = app

    async def _abort(self, context: Any, e: BadRequest) -> NoReturn:
        await context.abort(CODES.get(e.status, grpc.StatusCode.INVALID_ARGUMENT), str(e))
        raise AssertionError("context.abort returned")  # it raises, ending the call with that status

    def _model(self, name: str, version: str = "") -> ServedModel:
        model = served(self.app, name)
        if version and version != model.version:
            raise BadRequest(
                f"model {name!r} version {version!r} is not served here (version {model.version!r} is)", 404
            )
        return model

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.app[MODEL_KEY] is not None)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        from modelfleet import __version__

        return pb.ServerMetadataResponse(name="modelfleet", version=__version__, extensions=[])

    async def ModelReady(self, request: Any, context: Any) -> Any:
        try:
            self._model(request.name, request.version)
        except BadRequest as e:
            await self._abort(context, e)
        return pb.ModelReadyResponse(ready=True)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        try:
            meta = metadata(self._model(request.name, request.version))
        except BadRequest as e:
            await self._abort(context, e)
        response = pb.ModelMetadataResponse(name=meta["name"], versions=meta["versions"], platform=meta["platform"])
        for kind in ("inputs", "outputs"):
            for t in meta[kind]:
                getattr(response, kind).add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        return response

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        metrics: ServerMetrics = self.app[METRICS_KEY]
        try:
            model = self._model(request.model_name, request.model_version)
        except BadRequest as e:
            await self._abort(context, e)
        try:
            columns = parse_v2(decode_inputs(request), model)
            wanted = requested_outputs(model, request)
            pred, proba = await run_model(self.app, model, columns)
            response = infer_response(model, pred, proba, request, wanted)
        except BadRequest as e:
            metrics.requests.labels(model.name, str(e.status)).inc()
            await self._abort(context, e)
        metrics.requests.labels(model.name, "200").inc()
        return response


def add_grpc(
    app: web.Application, host: str, port: int, max_message_bytes: int, drain_seconds: float, *, shared: bool = False
) -> None:
    """Serves gRPC on host:port while the aiohttp application runs (started on its start-up, drained on its
    shutdown, after the HTTP listener has stopped accepting). `shared`: forked workers each bind the port
    (SO_REUSEPORT); a lone server does not, so a port already taken is an error at start, not a silent share."""

    async def start(app: web.Application) -> None:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.so_reuseport", 1 if shared else 0),
            ]
        )
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(app), server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as e:  # newer gRPC raises instead of returning 0
            raise OSError(f"cannot listen for gRPC on {address}: {e}") from e
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {address}")
        await server.start()
        app[GRPC_KEY] = server

    async def stop(app: web.Application) -> None:
        server = app.get(GRPC_KEY)
        if server is not None:
            await server.stop(grace=drain_seconds)

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
