"""Request activity and serving GPU use, read from Prometheus per namespace, not per model: every
`MODELFLEET_ACTIVITY_SECONDS` one set of queries per (namespace, Prometheus) returns the series of every serving
model there. The readings go on a board the MLModel passes read; a model is queued only when its reading changed
enough to matter (`reconcilers.utilization.significant`: it started or stopped being scraped, its first request,
its request rate moved by a quarter or crossed zero, its GPU use moved by 5 points). A fleet of idle models
therefore costs a few queries per namespace per interval and no API requests at all."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping

from modelfleet.cache.store import Store
from modelfleet.clients.ports import PrometheusFor
from modelfleet.config import OperatorConfig
from modelfleet.errors import PrometheusUnavailable
from modelfleet.reconcilers.utilization import Activity, namespace_activity, significant
from modelfleet.vocabulary import LABEL_MODEL, Key

log = logging.getLogger(__name__)


class ActivityBoard:
    """The latest reading per model (thread-safe: written by the scanner, read by passes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, str], Activity] = {}
        self._delivered: dict[tuple[str, str], Activity] = {}

    def get(self, namespace: str, model: str) -> Activity | None:
        with self._lock:
            return self._latest.get((namespace, model))

    def post(self, namespace: str, model: str, reading: Activity) -> bool:
        """Keeps the reading; True when the model should be queued for it."""
        key = (namespace, model)
        with self._lock:
            self._latest[key] = reading
            if significant(self._delivered.get(key), reading):
                self._delivered[key] = reading
                return True
            return False

    def forget(self, namespace: str, model: str) -> None:
        with self._lock:
            self._latest.pop((namespace, model), None)
            self._delivered.pop((namespace, model), None)


def serving_models(store: Store) -> dict[tuple[str, str], list[tuple[str, bool]]]:
    """(namespace, Prometheus URL) -> [(model, serves on GPUs)] for every model with a Deployment in the cache (the
    URL is the first one set by the model's DriftPolicies, by name). Whole kinds are read at once: every interval
    scans every served model, and a few lookups per model made this scan a fifth of an idle fleet's CPU."""
    gpus = store.facts("MLModel", "spec.serving.resources.gpu")
    refs = store.facts("DriftPolicy", "spec.modelRef.name")
    urls = store.facts("DriftPolicy", "spec.prometheus.url")
    url_of: dict[tuple[str, str], str] = {}
    for (namespace, policy), model in sorted(refs.items()):
        if model and urls.get((namespace, policy)) and (namespace, str(model)) not in url_of:
            url_of[(namespace, str(model))] = str(urls[(namespace, policy)])
    groups: dict[tuple[str, str], list[tuple[str, bool]]] = defaultdict(list)
    for (namespace, _), model in store.facts("Deployment", f"label:{LABEL_MODEL}").items():
        if not model or (namespace, str(model)) not in gpus:
            continue
        gpu = int(gpus[(namespace, str(model))] or 0) > 0
        groups[(namespace, url_of.get((namespace, str(model)), ""))].append((str(model), gpu))
    return groups


class ActivityScanner:
    def __init__(
        self,
        store: Store,
        board: ActivityBoard,
        config: OperatorConfig,
        prometheus_for: PrometheusFor,
        enqueue: Callable[[Key], None],
    ) -> None:
        self.store, self.board, self.config = store, board, config
        self.prometheus_for, self.enqueue = prometheus_for, enqueue
        self._warned: set[str] = set()

    def scan(self) -> list[Key]:
        """One round over every namespace with serving models; returns the models to queue."""
        due: list[Key] = []
        for (namespace, url), models in serving_models(self.store).items():
            prometheus = self.prometheus_for(url or self.config.prometheus_url)
            gpu_pods = {
                str(p["metadata"]["name"]): m
                for m, gpu in models
                if gpu
                for p in self.store.select(
                    "Pod", namespace, {f"label:{LABEL_MODEL}": m, "label:app.kubernetes.io/component": "serving"}
                )
            }
            try:
                readings: Mapping[str, Activity] = namespace_activity(prometheus, namespace, gpu_pods)
                self._warned.discard(namespace)
            except PrometheusUnavailable as e:
                if namespace not in self._warned:
                    log.warning("activity of namespace %s not read: %s", namespace, e)
                    self._warned.add(namespace)
                readings = {}
            for model, _ in models:
                reading = readings.get(model) or Activity(False, error="Prometheus has no series of its server pods")
                if self.board.post(namespace, model, reading):
                    due.append(Key("MLModel", namespace, model))
        return due

    async def run(self, synced: asyncio.Event, executor: concurrent.futures.Executor) -> None:
        await synced.wait()
        loop = asyncio.get_running_loop()
        while True:
            started = datetime.datetime.now(datetime.UTC)
            try:
                for key in await loop.run_in_executor(executor, self.scan):
                    self.enqueue(key)
            except Exception:  # a scan that fails is tried again next interval; the operator goes on
                log.exception("activity scan failed")
            spent = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
            await asyncio.sleep(max(0.0, self.config.activity_seconds - spent))
