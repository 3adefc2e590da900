"""What the gateway does with a request (front.py receives it): `/v2/models/{name}/...` forwarded to a ready serving
pod of that model, over the gateway's own keep-alive client (upstream.py). A model with no ready pod (scaled to zero,
or starting) holds the request, in a bounded queue, for up to the model's `serving.coldStartTimeout`, asks the
operator once to scale it up, and forwards as soon as a pod is ready. The gateway's own failures are
`{"error": ...}` with 404 (unknown model, naming the known ones), 502 (the pod could not be reached), 503 with
Retry-After (no pod within the bound, or the queue full) and 504 (the pod did not answer in time); a model server's
own answer, error or not, is passed through as it is."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from modelfleet.gateway.front import Reply, Request
from modelfleet.gateway.front import json_error as error
from modelfleet.gateway.routing import Endpoint, RoutingTable
from modelfleet.gateway.upstream import Broken, Unreachable, UpstreamPool

log = logging.getLogger(__name__)
FORWARDED_HEADERS = ("Content-Type", "Accept", "X-Request-Id", "Traceparent")
RETURNED_HEADERS = ("Content-Type", "X-Request-Id")
MODELS_PREFIX = "/v2/models/"
EJECT_SECONDS = 5.0  # a pod that refused a connection gets no requests for this long (Envoy's outlier ejection)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "modelfleet_gateway_requests_total",
            "Requests through the gateway by model, the version that answered, and status code.",
            ["model", "version", "code"],
            registry=self.registry,
        )
        self.queued = Gauge(
            "modelfleet_gateway_queue_length",
            "Requests held while the model has no ready pod.",
            ["model"],
            registry=self.registry,
        )
        self.cold_start = Histogram(
            "modelfleet_gateway_cold_start_seconds",
            "How long a held request waited for a ready pod.",
            ["model"],
            registry=self.registry,
            buckets=(0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120, 300),
        )
        self.latency = Histogram(
            "modelfleet_gateway_request_seconds",
            "Time from forwarding a request to a pod to its answer, by model and the version that answered.",
            ["model", "version"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.last_request = Gauge(
            "modelfleet_gateway_last_request_timestamp_seconds",
            "Unix time of the last request for the model (held or forwarded): activity for idle detection.",
            ["model"],
            registry=self.registry,
        )


class Gateway:
    def __init__(
        self,
        table: RoutingTable,
        namespace: str,
        request_scale_up: Callable[[str], Awaitable[None]],
        *,
        max_queue: int = 100,
        upstream_timeout: float = 30.0,
        retry_after: int = 5,
    ) -> None:
        self.table = table
        self.namespace = namespace
        self.request_scale_up = request_scale_up
        self.max_queue = max_queue
        self.upstream_timeout = upstream_timeout
        self.retry_after = retry_after
        self.metrics = GatewayMetrics()
        self.ready: dict[str, asyncio.Event] = {}  # set while the model has a ready endpoint
        self.waiting: dict[str, int] = {}
        self.scale_up_sent: dict[str, float] = {}  # monotonic time of the last request per model
        self.pool = UpstreamPool()

    # The watches call this (on the loop) after every change to the table.
    def table_changed(self) -> None:
        now = time.monotonic()
        for model, event in self.ready.items():
            if self.table.endpoints(model, now):
                event.set()
                self.scale_up_sent.pop(model, None)  # this cold start is over: the next one asks again
            else:
                event.clear()

    def stop(self) -> None:
        self.pool.close()

    async def endpoint_for(self, model: str) -> Endpoint | Reply:
        """A ready endpoint now, or after holding the request (bounded); else the 503 to answer."""
        endpoint = self.table.pick(model, time.monotonic())
        if endpoint is not None:
            return endpoint
        entry = self.table.models.get(model)
        bound = entry.cold_start_timeout if entry else 0.0
        retry = {"Retry-After": str(self.retry_after)}
        if self.waiting.get(model, 0) >= self.max_queue:
            return error(503, f"model {model!r} has no ready pod and {self.max_queue} requests already wait", retry)
        event = self.ready.setdefault(model, asyncio.Event())
        event.clear()
        if entry is not None and entry.scale_to_zero:
            await self._ask_scale_up(model, bound)
        self.waiting[model] = self.waiting.get(model, 0) + 1
        self.metrics.queued.labels(model).set(self.waiting[model])
        held = time.monotonic()
        try:
            while True:
                left = bound - (time.monotonic() - held)
                if left <= 0:
                    break
                # Woken by the watch; also looks again each second (an ejected pod's time may be up).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(left, 1.0))
                endpoint = self.table.pick(model, time.monotonic())
                if endpoint is not None:
                    self.metrics.cold_start.labels(model).observe(time.monotonic() - held)
                    return endpoint
                event.clear()
        finally:
            self.waiting[model] -= 1
            self.metrics.queued.labels(model).set(self.waiting[model])
        return error(
            503,
            f"model {model!r} has no ready pod after waiting {bound:g}s (serving.coldStartTimeout)",
            retry,
        )

    async def _ask_scale_up(self, model: str, bound: float) -> None:
        """Once per cold start: a request held since the last ask (within the bound, before a pod became ready)
        has already asked."""
        now = time.monotonic()
        if now - self.scale_up_sent.get(model, -1e9) < max(bound, 1.0):
            return
        self.scale_up_sent[model] = now
        try:
            await self.request_scale_up(model)
        except Exception as e:  # the request still waits; the operator may scale up anyway
            log.warning("asking the operator to scale up %s failed: %s", model, e)

    async def handle(self, request: Request) -> Reply:
        """The gateway's routes: `/v2/models/{name}[/...]` (any method), `/healthz`, `/metrics`."""
        if request.path.startswith(MODELS_PREFIX):
            model = request.path[len(MODELS_PREFIX) :].split("/", 1)[0]
            if model:
                return await self.forward(request, model)
        elif request.path == "/healthz":
            return Reply(200, b'{"live":true}', {"Content-Type": "application/json"})
        elif request.path == "/metrics":
            return Reply(200, generate_latest(self.metrics.registry), {"Content-Type": CONTENT_TYPE_LATEST})
        return error(404, f"no route {request.path!r}: models are under {MODELS_PREFIX}{{name}}/")

    async def forward(self, request: Request, model: str) -> Reply:
        self.metrics.last_request.labels(model).set(time.time())
        if model not in self.table.models and not self.table.endpoints(model):
            known = self.table.known()
            self.metrics.requests.labels(model, "", "404").inc()
            return error(404, f"model {model!r} is not served in namespace {self.namespace}; known models: {known}")
        tried: set[str] = set()
        for _attempt in range(2):  # a pod that refuses the connection: once more on another, if there is one
            got = await self.endpoint_for(model)
            if isinstance(got, Reply):
                self.metrics.requests.labels(model, "", str(got.status)).inc()
                return got
            if got.pod in tried:
                break
            tried.add(got.pod)
            sent = time.perf_counter()
            answer = await self._send(request, got)
            if answer is not None:
                self.metrics.latency.labels(model, got.version).observe(time.perf_counter() - sent)
                self.metrics.requests.labels(model, got.version, str(answer.status)).inc()
                return answer
        self.metrics.requests.labels(model, "", "502").inc()
        return error(502, f"no serving pod of model {model!r} could be reached (tried {sorted(tried)})")

    async def _send(self, request: Request, endpoint: Endpoint) -> Reply | None:
        """The pod's answer; None when no connection could be made (nothing was sent, so another pod may be tried);
        a 502/504 response for failures after the request was sent."""
        headers = {h: request.headers[h.lower()] for h in FORWARDED_HEADERS if h.lower() in request.headers}
        try:
            answer = await self.pool.request(
                endpoint.address, request.method, request.target, headers, request.body, self.upstream_timeout
            )
        except Unreachable as e:
            log.info("pod %s of %s could not be reached: %s", endpoint.pod, endpoint.model, e)
            self.table.eject(endpoint.pod, EJECT_SECONDS, time.monotonic())
            self.table_changed()
            return None
        except TimeoutError:
            return error(504, f"pod {endpoint.pod} of model {endpoint.model!r} did not answer in time")
        except Broken as e:
            return error(502, f"pod {endpoint.pod} of model {endpoint.model!r} failed: {e}")
        out = {h: answer.headers[h.lower()] for h in RETURNED_HEADERS if h.lower() in answer.headers}
        return Reply(answer.status, answer.body, out)
