"""The HTTP application: Open Inference Protocol v2 routes, /predict, /metrics. Every client mistake is a 4xx with
{"error": ...}; the worker never dies on a bad request."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from modelfleet.server.batching import MicroBatcher
from modelfleet.server.drift import DriftMonitor
from modelfleet.server.model import ServedModel
from modelfleet.server.protocol import (
    BadRequest,
    instances_response,
    metadata,
    parse_instances,
    parse_v2,
    v2_response,
)

MODEL_KEY: web.AppKey[ServedModel | None] = web.AppKey("model", ServedModel | None)  # type: ignore[arg-type]
METRICS_KEY: web.AppKey[ServerMetrics] = web.AppKey("metrics", object)  # type: ignore[arg-type]
DRIFT_KEY: web.AppKey[DriftMonitor | None] = web.AppKey("drift", object)  # type: ignore[arg-type]


class ServerMetrics:
    """KServe's metric names where they exist (request_predict_seconds), ModelFleet's otherwise."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        # What /metrics shows: this process's registry, or (several workers) every worker's values summed.
        self.exposition = self.registry
        if multiprocess_dir is not None:
            from prometheus_client import multiprocess

            self.exposition = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.exposition, str(multiprocess_dir))
        self.predict_seconds = Histogram(
            "request_predict_seconds",
            "Time spent predicting one request.",
            ["model_name"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )
        self.requests = Counter(
            "modelfleet_server_requests_total",
            "Inference requests by model and status code.",
            ["model", "code"],
            registry=self.registry,
        )
        self.rows = Counter("modelfleet_server_rows_total", "Rows predicted.", ["model"], registry=self.registry)
        self.info = Gauge(
            "modelfleet_server_model_info",
            "The served model (value 1).",
            ["model", "version", "digest", "framework"],
            registry=self.registry,
            multiprocess_mode="max",
        )
        self.batch_rows = Histogram(
            "modelfleet_server_batch_rows",
            "Rows per micro-batch.",
            ["model"],
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.last_request = Gauge(
            "modelfleet_server_last_request_timestamp_seconds",
            "Unix time of the last inference request.",
            ["model"],
            registry=self.registry,
            multiprocess_mode="max",
        )


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status=status, content_type="application/json"
    )


def error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


@web.middleware
async def errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as e:
        return error(e.status, str(e))
    except web.HTTPRequestEntityTooLarge:
        return error(413, f"request body larger than the limit of {request.app['max_body']} bytes")
    except web.HTTPException as e:
        return error(e.status, e.reason or "error")


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"malformed JSON: {e}") from e


def _model(request: web.Request, name: str | None = None) -> ServedModel:
    return served(request.app, name)


def served(app: web.Application, name: str | None = None) -> ServedModel:
    """The model, when loaded and (if named) the one asked for: else a 503 or a 404."""
    model = app[MODEL_KEY]
    if model is None:
        raise BadRequest("the model is not loaded yet", 503)
    if name is not None and name != model.name:
        raise BadRequest(f"model {name!r} is not served here (this server serves {model.name!r})", 404)
    return model


async def run_model(app: web.Application, model: ServedModel, columns: dict[str, Any]) -> tuple[Any, Any]:
    """Predicts parsed columns and records it (latency, rows, last request, the drift window): the part REST and
    gRPC share. A value the model rejects (e.g. a category it cannot encode) is a 422."""
    metrics: ServerMetrics = app[METRICS_KEY]
    started = time.perf_counter()
    batcher: MicroBatcher | None = app.get("batcher")
    try:
        pred, proba = await batcher.submit(columns) if batcher else model.predict(columns)
    except ValueError as e:
        raise BadRequest(f"the model rejected the input: {e}", 422) from e
    metrics.predict_seconds.labels(model.name).observe(time.perf_counter() - started)
    drift = app[DRIFT_KEY]
    if drift is not None:
        drift.observe(columns)
    metrics.rows.labels(model.name).inc(len(pred))
    metrics.last_request.labels(model.name).set(time.time())
    return pred, proba


async def _predict(
    request: web.Request,
    parse: Callable[[Any, ServedModel], dict[str, Any]],
    respond: Callable[[ServedModel, Any, Any, Any], Any],
    name: str | None = None,
) -> web.Response:
    metrics: ServerMetrics = request.app[METRICS_KEY]
    model = _model(request, name)
    try:
        body = await _body(request)
        pred, proba = await run_model(request.app, model, parse(body, model))
    except BadRequest as e:
        metrics.requests.labels(model.name, str(e.status)).inc()
        raise
    metrics.requests.labels(model.name, "200").inc()
    return json_response(respond(model, pred, proba, body.get("id") if isinstance(body, dict) else None))


async def live(_: web.Request) -> web.Response:
    return json_response({"live": True})


async def ready(request: web.Request) -> web.Response:
    ok = request.app[MODEL_KEY] is not None
    return json_response({"ready": ok}, 200 if ok else 503)


async def model_ready(request: web.Request) -> web.Response:
    _model(request, request.match_info["name"])
    return json_response({"name": request.match_info["name"], "ready": True})


async def model_metadata(request: web.Request) -> web.Response:
    return json_response(metadata(_model(request, request.match_info["name"])))


async def infer(request: web.Request) -> web.Response:
    return await _predict(request, parse_v2, v2_response, request.match_info["name"])


async def predict(request: web.Request) -> web.Response:
    return await _predict(request, parse_instances, lambda _m, p, pr, _i: instances_response(p, pr))


async def metrics_endpoint(request: web.Request) -> web.Response:
    return web.Response(
        body=generate_latest(request.app[METRICS_KEY].exposition), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def build_app(
    model: ServedModel | None,
    max_body: int,
    max_batch: int = 1,
    max_wait: float = 0.002,
    drift: DriftMonitor | None = None,
    multiprocess_dir: Path | None = None,
) -> web.Application:
    app = web.Application(middlewares=[errors_as_json], client_max_size=max_body)
    app["max_body"] = max_body
    metrics = ServerMetrics(multiprocess_dir)
    app[DRIFT_KEY] = drift
    if drift is not None:
        metrics.exposition.register(drift)
        monitor = drift

        async def start_drift(_: web.Application) -> None:
            monitor.start()

        async def stop_drift(_: web.Application) -> None:
            await monitor.stop()

        app.on_startup.append(start_drift)
        app.on_cleanup.append(stop_drift)
    if model is not None and max_batch > 1:
        batcher = MicroBatcher(model, max_batch, max_wait, metrics.batch_rows.labels(model.name).observe)
        app["batcher"] = batcher

        async def start_batcher(_: web.Application) -> None:
            batcher.start()

        async def stop_batcher(_: web.Application) -> None:
            await batcher.stop()

        app.on_startup.append(start_batcher)
        app.on_cleanup.append(stop_batcher)
    app[MODEL_KEY] = model
    app[METRICS_KEY] = metrics
    if model is not None:
        metrics.info.labels(model.name, model.version, model.digest, model.framework).set(1)
    app.add_routes(
        [
            web.get("/v2/health/live", live),
            web.get("/v2/health/ready", ready),
            web.get("/v2/models/{name}", model_metadata),
            web.get("/v2/models/{name}/ready", model_ready),
            web.post("/v2/models/{name}/infer", infer),
            web.post("/predict", predict),
            web.get("/metrics", metrics_endpoint),
        ]
    )
    return app
