"""The gateway's view of its namespace, from two watches (serving pods, MLModels): list, then watch from the list's
resourceVersion; on expiry (410) or any break, list again, so a missed event is repaired by the relist. The
Kubernetes client is blocking, so each watch runs in a thread and hands every change to the event loop.

The scale-up request is the operator's existing one: a new value of the MLModel's `modelfleet.io/scale-up`
annotation (a merge patch), sent from a thread too."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from modelfleet.api.v1alpha1 import GROUP, VERSION
from modelfleet.gateway.routing import RoutingTable, model_entry, ready_endpoint
from modelfleet.reconcilers.scaling import SCALE_UP_ANNOTATION
from modelfleet.vocabulary import CANARY_COMPONENT, MANAGED_BY

log = logging.getLogger(__name__)
# The serving pods of every model, and those of a canary beside them.
SERVING_PODS = ",".join(
    [f"{k}={v}" for k, v in MANAGED_BY.items()] + [f"app.kubernetes.io/component in (serving,{CANARY_COMPONENT})"]
)
WATCH_SECONDS = 300  # each watch call ends after this and resumes from its resourceVersion
RETRY_SECONDS = 1.0


def api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except ConfigException:
        config.load_kube_config()
    return client.ApiClient()


class NamespaceWatch:
    def __init__(
        self, api: client.ApiClient, namespace: str, table: RoutingTable, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.table = table
        self.loop = loop
        self.listeners: list[Callable[[], None]] = []
        self.stopping = threading.Event()
        self.synced = {"pods": threading.Event(), "mlmodels": threading.Event()}

    # -- on the event loop --------------------------------------------------------------------------------------
    def _apply(self, change: Callable[[], object]) -> None:
        change()
        for listener in self.listeners:
            listener()

    def _hand_over(self, change: Callable[[], object]) -> None:
        self.loop.call_soon_threadsafe(self._apply, change)

    # -- in the threads -----------------------------------------------------------------------------------------
    def _pods_list(self) -> tuple[list[dict[str, Any]], str]:
        raw = self.core.list_namespaced_pod(self.namespace, label_selector=SERVING_PODS, _preload_content=False)
        body = json.loads(raw.data)
        return body.get("items") or [], body["metadata"]["resourceVersion"]

    def _models_list(self) -> tuple[list[dict[str, Any]], str]:
        body = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, "mlmodels")
        return body.get("items") or [], body["metadata"]["resourceVersion"]

    def _run(self, kind: str) -> None:
        listing = self._pods_list if kind == "pods" else self._models_list
        while not self.stopping.is_set():
            try:
                items, version = listing()
                replace = self.table.replace_pods if kind == "pods" else self.table.replace_models
                self._hand_over(functools.partial(replace, items))
                self.synced[kind].set()
                while not self.stopping.is_set():  # each call ends after WATCH_SECONDS; resume where it ended
                    version = self._follow(kind, version)
            except ApiException as e:
                if e.status != 410:
                    log.warning("watching %s in %s: %s %s; listing again", kind, self.namespace, e.status, e.reason)
                    time.sleep(RETRY_SECONDS)
            except Exception as e:  # a broken connection: list again, never give up
                log.warning("watching %s in %s: %s; listing again", kind, self.namespace, e)
                time.sleep(RETRY_SECONDS)

    def _follow(self, kind: str, version: str) -> str:
        """Watches from `version` until the call ends; returns the last version seen. A 410 (too old) raises, and
        the caller lists again."""
        w = watch.Watch()
        if kind == "pods":
            stream = w.stream(
                self.core.list_namespaced_pod,
                self.namespace,
                label_selector=SERVING_PODS,
                resource_version=version,
                timeout_seconds=WATCH_SECONDS,
                allow_watch_bookmarks=True,
            )
        else:
            stream = w.stream(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                "mlmodels",
                resource_version=version,
                timeout_seconds=WATCH_SECONDS,
                allow_watch_bookmarks=True,
            )
        for event in stream:
            if self.stopping.is_set():
                w.stop()
                break
            kind_of_change, obj = event["type"], event.get("raw_object") or {}
            if kind_of_change == "ERROR":
                raise ApiException(status=int(obj.get("code") or 500), reason=str(obj.get("message")))
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind_of_change == "BOOKMARK":
                continue
            self._hand_over(self._change(kind, kind_of_change, obj))
        return version

    def _change(self, kind: str, change: str, obj: Mapping[str, Any]) -> Callable[[], object]:
        name = str((obj.get("metadata") or {}).get("name", ""))
        if kind == "pods":
            endpoint = None if change == "DELETED" else ready_endpoint(obj)
            return functools.partial(self.table.set_pod, name, endpoint)
        if change == "DELETED":
            return lambda: self.table.remove_model(name)
        entry = model_entry(obj)
        return lambda: self.table.set_model(entry)

    def start(self) -> None:
        for kind in ("pods", "mlmodels"):
            threading.Thread(target=self._run, args=(kind,), name=f"watch-{kind}", daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()

    def request_scale_up(self, model: str) -> None:
        """Blocking: a new value of the scale-up annotation, which the operator acts on."""
        patch = {"metadata": {"annotations": {SCALE_UP_ANNOTATION: f"gateway-{time.time():.3f}"}}}
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, "mlmodels", model, patch)
