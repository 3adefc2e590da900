"""The Kubernetes client, created once per process: every request it makes is rate limited (client-go's `--kube-api-qps`
and `--kube-api-burst`) and counted in `modelfleet_api_requests_total`."""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import socket
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from modelfleet.api.v1alpha1 import GROUP, VERSION
from modelfleet.artifact.objectstore import ObjectStore, S3Settings, S3Uri, StoreError, is_object_uri
from modelfleet.clients.ratelimit import RequestGate, TokenBucket
from modelfleet.metrics import API_REQUESTS
from modelfleet.status.conditions import rfc3339
from modelfleet.vocabulary import KUEUE_GROUP, KUEUE_JOB_UID, KUEUE_VERSION, LABEL_MODEL, LABEL_MODEL_UID, pvc_claim

METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
# A list as a Table whose rows carry only their printed cells (`includeObject=None`): what `kubectl get` asks for.
AS_TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1"
API_PATHS = {"pods": "/api/v1", "jobs": "/apis/batch/v1", "deployments": "/apis/apps/v1"}
OUR_PLURALS = ("mlmodels", "trainingjobs", "driftpolicies", "modelversions")
log = logging.getLogger(__name__)


def _field_selector(fields: Mapping[str, str]) -> str:
    return ",".join(f"{path}={value}" for path, value in fields.items())


def _field(obj: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (None when any step is missing), as the API server reads a selectable field."""
    node: Any = obj
    for step in path.split("."):
        node = node.get(step) if isinstance(node, Mapping) else None
    return node


_RESOURCE = re.compile(r"^/apis?/(?:[^/]+/)?v[^/]+/(?:namespaces/[^/]+/)?([^/?]+)(?:/[^/?]+)?(/status)?")


def resource_of(url: str) -> str:
    """The resource a request is about, for the request counter: `pods`, `mlmodels/status`, `namespaces`."""
    path = urllib.parse.urlparse(url).path
    match = _RESOURCE.match(path)
    if not match:
        return "other"
    return match.group(1) + (match.group(2) or "")


CONNECT_TIMEOUT = 5.0
T = TypeVar("T")


def transient(e: BaseException, *, unreachable: bool = True) -> bool:
    """An API failure worth trying again: the server busy (429) or failing (5xx), or (with `unreachable`) not
    answering at all. Anything else (403, 404, 422) says the same on every try."""
    if isinstance(e, ApiException):
        return e.status == 429 or (e.status or 0) >= 500
    return unreachable and isinstance(e, (HTTPError, ConnectionError, TimeoutError))


def describe(e: BaseException) -> str:
    """One line for an API failure: `403 Forbidden: <the Status message>`; other errors as they print."""
    if not isinstance(e, ApiException):
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    try:
        message = json.loads(e.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = ""
    return f"{e.status} {e.reason}" + (f": {message}" if message else "")


def retrying(
    call: Callable[[], T],
    *,
    what: str,
    budget: float,
    unreachable: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, tried again after transient failures with doubling pauses (0.5 s up to 5 s) for up to `budget`
    seconds; the last failure is raised. For the one-shot requests of start-up, which have no work queue to retry
    them: one lost response must not stop an operator."""
    deadline = time.monotonic() + budget
    pause = 0.5
    while True:
        try:
            return call()
        except Exception as e:
            if not transient(e, unreachable=unreachable) or time.monotonic() + pause > deadline:
                raise
            log.warning("%s failed (%s); trying again in %.1fs", what, getattr(e, "status", None) or e, pause)
        sleep(pause)
        pause = min(pause * 2, 5.0)


def _limited(api: client.ApiClient, limiter: TokenBucket | None, timeout: float = 60.0) -> client.ApiClient:
    """Every request of `api` waits for the limiter (on the calling thread, never the event loop) and is counted."""
    rest = api.rest_client
    request = rest.request
    gate = RequestGate(limiter)

    def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        gate.enter()
        if kwargs.get("_request_timeout") is None:
            # No request waits forever: a connection that stalls (a proxy, a half-open socket) fails the pass, which
            # is retried on a fresh connection.
            kwargs["_request_timeout"] = (CONNECT_TIMEOUT, timeout)
        code = "error"
        try:
            response = request(method, url, *args, **kwargs)
            code = str(getattr(response, "status", "") or "")
            return response
        except ApiException as e:
            code = str(e.status)
            raise
        finally:
            API_REQUESTS.labels(method, resource_of(url), code).inc()

    rest.request = counted
    api.request_gate = gate  # Kube.stop_requests closes it
    return api


def api_client(
    kubeconfig: str | None = None,
    *,
    qps: float | None = None,
    burst: int | None = None,
    timeout: float = 60.0,
) -> client.ApiClient:
    """In-cluster credentials when running in a pod, the kubeconfig ($KUBECONFIG or `kubeconfig`) otherwise. With
    `qps`, requests beyond `burst` in a row are spaced to `qps` per second."""
    cfg = client.Configuration()
    if kubeconfig is None:
        kubeconfig = os.environ.get("KUBECONFIG")
    try:
        config.load_incluster_config(client_configuration=cfg)
    except ConfigException:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = max(cfg.connection_pool_maxsize or 4, 16)  # one per worker thread
    limiter = TokenBucket(qps, burst or max(1, int(qps))) if qps else None
    return _limited(client.ApiClient(cfg), limiter, timeout)


def missing_crds(
    api: client.ApiClient,
    group: str = GROUP,
    version: str = VERSION,
    plurals: tuple[str, ...] = OUR_PLURALS,
    *,
    timeout: float | None = None,
) -> list[str]:
    """CRD names (plural.group) the API server does not serve. Uses discovery, which every user may read, so the
    check needs no permission on CustomResourceDefinitions."""
    try:
        resources = client.CustomObjectsApi(api).get_api_resources(group, version, _request_timeout=timeout)
    except ApiException as e:
        if e.status == 404:
            return [f"{p}.{group}" for p in plurals]
        raise
    served = {r.name for r in resources.resources}
    return [f"{p}.{group}" for p in plurals if p not in served]


class Kube:
    """The operator's reads and writes, on plain JSON. Children are created with server-side apply under one field
    manager; reads return None for objects that do not exist."""

    FIELD_MANAGER = "modelfleet-operator"

    def __init__(self, api: client.ApiClient, *, s3_endpoint: str = "") -> None:
        self.api = api
        self._s3_endpoint = s3_endpoint
        self._object_stores: dict[str, ObjectStore] = {}  # by scheme (s3, gs)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self._gate: RequestGate | None = getattr(api, "request_gate", None)
        # (plural, field paths) whose field selectors this API server refused: asked once, then filtered here.
        self._unselectable: set[tuple[str, tuple[str, ...]]] = set()

    def object_store(self, scheme: str = "s3") -> ObjectStore:
        """The operator's client of `scheme`'s store (made on first use: a fleet without s3:// or gs:// locations
        never builds one)."""
        if scheme not in self._object_stores:
            self._object_stores[scheme] = ObjectStore(
                S3Settings.from_env(endpoint=self._s3_endpoint or None, scheme=scheme)
            )
        return self._object_stores[scheme]

    def stop_requests(self) -> None:
        """Every later request of this client raises ClientStopped (shutting down: abandoned passes end now)."""
        if self._gate is not None:
            self._gate.close()

    @staticmethod
    def _json(resp: Any) -> dict[str, Any]:
        return dict(json.loads(resp.data))

    @staticmethod
    def _drain(resp: Any) -> None:
        """Reads an answer no one needs, which hands its connection back to the pool: an unread answer keeps it,
        so the next request opened a new TLS connection (one per Event posted, 8 % of the operator's CPU while a
        fleet of 5,000 was built)."""
        _ = resp.data
        resp.release_conn()

    def _get(self, fn: Any, *args: Any) -> dict[str, Any] | None:
        try:
            return self._json(fn(*args, _preload_content=False))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self.batch.read_namespaced_job, name, namespace)

    def workload_of_job(self, namespace: str, job_uid: str) -> dict[str, Any] | None:
        """Kueue's Workload for a Job, by the label Kueue puts on it (None: none, or Kueue is not installed)."""
        try:
            resp = self.custom.list_namespaced_custom_object(
                KUEUE_GROUP, KUEUE_VERSION, namespace, "workloads", label_selector=f"{KUEUE_JOB_UID}={job_uid}",
                _preload_content=False,
            )  # fmt: skip
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        items = self._json(resp).get("items") or []
        return dict(items[0]) if items else None

    def delete_job(self, namespace: str, name: str) -> None:
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as e:
            if e.status != 404:
                raise

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        resp = self.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
        return list(self._json(resp)["items"])

    def list_custom(
        self, namespace: str, plural: str, selector: str | None = None, *, fields: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Objects of one of our kinds, by label selector and by `fields` ({"spec.modelRef.name": "churn"}): those
        are filtered by the API server through the CRD's selectableFields (Kubernetes >= 1.31), so a pass does not
        read every object of the namespace; a server that refuses the field selector (older, or a CRD installed
        without the field) is asked for all of them once more and they are filtered here."""
        kwargs: dict[str, Any] = {"_preload_content": False}
        if selector:
            kwargs["label_selector"] = selector
        unselectable = (plural, tuple(sorted(fields or {})))
        if fields and unselectable not in self._unselectable:
            try:
                resp = self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, field_selector=_field_selector(fields), **kwargs
                )
                return list(self._json(resp)["items"])
            except ApiException as e:
                if e.status != 400:
                    raise
                self._unselectable.add(unselectable)
                log.warning(
                    "the API server cannot select %s by %s (%s); filtering here", plural, list(fields), e.reason
                )
        resp = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **kwargs)
        items = list(self._json(resp)["items"])
        return [o for o in items if all((_field(o, path) or "") == value for path, value in (fields or {}).items())]

    def get_custom(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        return self._get(self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name)

    def recorded_versions(self, namespace: str, model: str, model_uid: str) -> set[int]:
        records = self.list_custom(namespace, "modelversions", f"{LABEL_MODEL}={model},{LABEL_MODEL_UID}={model_uid}")
        return {int(r["spec"]["version"]) for r in records}

    def create_custom(self, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Creates the object and returns it; None when one of that name already exists (deterministic names make it
        ours)."""
        try:
            resp = self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, body, _preload_content=False
            )
        except ApiException as e:
            if e.status == 409:
                return None
            raise
        return self._json(resp)

    def list_all(
        self, plural: str, namespace: str | None = None, *, selector: str | None = None, page: int = 500
    ) -> list[dict[str, Any]]:
        """Every object of one of our kinds, or of pods, jobs and deployments (by label selector), in pages."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": page, "_preload_content": False}
            if token:
                kwargs["_continue"] = token
            if selector:
                kwargs["label_selector"] = selector
            resp = self._json(self._lister(plural, namespace)(**kwargs))
            items.extend(resp.get("items") or [])
            token = (resp.get("metadata") or {}).get("continue")
            if not token:
                return items

    def list_metadata(
        self, plural: str, namespace: str | None = None, *, selector: str | None = None, page: int = 500
    ) -> tuple[set[tuple[str, str]], int | None]:
        """The (namespace, name) of every object, as metadata only (PartialObjectMetadataList: a few hundred bytes an
        object, not the whole body), and the list's resourceVersion (None when not a number)."""
        names: set[tuple[str, str]] = set()
        token: str | None = None
        version: int | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": page, "_preload_content": False, "_headers": {"Accept": METADATA_ONLY}}
            if token:
                kwargs["_continue"] = token
            if selector:
                kwargs["label_selector"] = selector
            resp = self._json(self._lister(plural, namespace)(**kwargs))
            for item in resp.get("items") or []:
                meta = item.get("metadata") or {}
                names.add((str(meta.get("namespace", "")), str(meta.get("name", ""))))
            meta = resp.get("metadata") or {}
            if version is None:  # the first page's version: the continuation pages are read at it
                raw = str(meta.get("resourceVersion") or "")
                version = int(raw) if raw.isdigit() else None
            token = meta.get("continue")
            if not token:
                return names, version

    def count(self, plural: str, namespace: str | None = None, *, selector: str | None = None, page: int = 500) -> int:
        """How many objects there are, read as a Table without its objects: a row of printed cells is tens of bytes,
        where an object's metadata is kilobytes (its managedFields: 3.1 KiB an MLModel, 4.4 KiB a serving pod on the
        1,000 fleet), so counting 6,000 objects decodes about 1 MB instead of 25 MB. (A list's remainingItemCount
        would be cheaper still, but the API server leaves it out of lists with a label selector: the children's.)"""
        path = f"{API_PATHS.get(plural, f'/apis/{GROUP}/{VERSION}')}"
        path += f"/namespaces/{urllib.parse.quote(namespace)}/{plural}" if namespace else f"/{plural}"
        rows, token = 0, ""
        while True:
            query = [("limit", str(page)), ("includeObject", "None")]
            query += [("labelSelector", selector)] if selector else []
            query += [("continue", token)] if token else []
            request = self.api.param_serialize(
                "GET", path, query_params=query, header_params={"Accept": AS_TABLE}, auth_settings=["BearerToken"]
            )
            resp = self.api.call_api(*request)
            resp.read()
            if not 200 <= resp.status <= 299:
                raise ApiException.from_response(http_resp=resp, body=None, data=None)
            table = self._json(resp)
            rows += len(table.get("rows") or [])
            token = (table.get("metadata") or {}).get("continue") or ""
            if not token:
                return rows

    def _lister(self, plural: str, namespace: str | None) -> Any:
        apps = client.AppsV1Api(self.api)
        if plural in OUR_PLURALS:
            if namespace:
                return lambda **kw: self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **kw)
            return lambda **kw: self.custom.list_cluster_custom_object(GROUP, VERSION, plural, **kw)
        namespaced, everywhere = {
            "pods": (self.core.list_namespaced_pod, self.core.list_pod_for_all_namespaces),
            "jobs": (self.batch.list_namespaced_job, self.batch.list_job_for_all_namespaces),
            "deployments": (apps.list_namespaced_deployment, apps.list_deployment_for_all_namespaces),
        }[plural]
        if namespace:
            return lambda **kw: namespaced(namespace, **kw)
        return everywhere

    def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any]:
        """A JSON merge patch of the status subresource, refused with 409 when the object changed since
        `resource_version` (the pass then runs again on the newer object). Returns the object written."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        resp = self.custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            body,
            _content_type="application/merge-patch+json",
            _preload_content=False,
        )
        return self._json(resp)

    def patch_metadata(self, plural: str, namespace: str, name: str, metadata: dict[str, Any]) -> None:
        """A JSON merge patch of an object's metadata (finalizers, annotations)."""
        resp = self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            {"metadata": metadata},
            _content_type="application/merge-patch+json",
            _preload_content=False,
        )
        self._drain(resp)

    def post_event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """One core/v1 Event about `involved` (a raw object with apiVersion and kind), from this operator."""
        meta = involved["metadata"]
        now = rfc3339(datetime.datetime.now(datetime.UTC))
        resp = self.core.create_namespaced_event(
            meta["namespace"],
            {
                "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
                "involvedObject": {
                    "apiVersion": involved.get("apiVersion"),
                    "kind": involved.get("kind"),
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "uid": meta.get("uid"),
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "type": type_,
                "reason": reason,
                "message": message[:1024],
                "source": {"component": self.FIELD_MANAGER},
                "reportingComponent": self.FIELD_MANAGER,
                "reportingInstance": socket.gethostname()[:128],
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            },
            _preload_content=False,
        )
        self._drain(resp)

    def artifact_exists(self, namespace: str, uri: str) -> bool | None:
        """Whether an artifact directory (with its digest file) is at `uri`: True/False when this process can look
        (file:// paths, and pvc:// claims bound to a local or hostPath volume on this machine), None when it cannot
        tell (remote volumes, a store these credentials cannot read): the caller then trusts the record of the
        TrainingJob that wrote it. An s3:// or gs:// artifact is one HEAD on its manifest, with the operator's own
        credentials (its AWS_* environment) and endpoint."""
        if uri.startswith("file://"):
            return (Path(urllib.parse.urlparse(uri).path) / "digest").is_file()
        if is_object_uri(uri):
            try:
                return self.object_store(S3Uri.parse(uri).scheme).artifact_exists(uri)
            except StoreError as e:
                log.info("cannot tell whether %s exists (%s); trusting the record of the run that wrote it", uri, e)
                return None
        parsed = pvc_claim(uri)
        if parsed is None:
            return None
        claim, rel = parsed
        pvc = self._get(self.core.read_namespaced_persistent_volume_claim, claim, namespace)
        volume = (pvc or {}).get("spec", {}).get("volumeName")
        try:
            pv = self._get(self.core.read_persistent_volume, volume) if volume else None
        except ApiException as e:
            if e.status == 403:  # watching namespaces only: no cluster-scoped reads (see api/rbac.py)
                return None
            raise
        source = (pv or {}).get("spec", {})
        base = (source.get("hostPath") or source.get("local") or {}).get("path")
        if not base or not Path(base).is_dir():
            return None
        return (Path(base) / rel / "digest").is_file()

    def get_claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self.core.read_namespaced_persistent_volume_claim, name, namespace)

    def create_claim(self, body: dict[str, Any]) -> bool:
        """Creates the claim; False when one of that name exists (never changed: it may be someone else's)."""
        try:
            self.core.create_namespaced_persistent_volume_claim(body["metadata"]["namespace"], body)
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        return True

    # -- children: server-side apply per kind -------------------------------------------------------------
    def _appliers(self) -> dict[str, Any]:
        apps, autoscaling, policy = (
            client.AppsV1Api(self.api),
            client.AutoscalingV2Api(self.api),
            client.PolicyV1Api(self.api),
        )
        return {
            "Job": (self.batch.patch_namespaced_job, self.batch.delete_namespaced_job),
            "Deployment": (apps.patch_namespaced_deployment, apps.delete_namespaced_deployment),
            "Service": (self.core.patch_namespaced_service, self.core.delete_namespaced_service),
            "HorizontalPodAutoscaler": (
                autoscaling.patch_namespaced_horizontal_pod_autoscaler,
                autoscaling.delete_namespaced_horizontal_pod_autoscaler,
            ),
            "PodDisruptionBudget": (
                policy.patch_namespaced_pod_disruption_budget,
                policy.delete_namespaced_pod_disruption_budget,
            ),
        }

    def apply(self, obj: dict[str, Any]) -> str | None:
        """Server-side apply; returns the resourceVersion the object has now."""
        patch, _ = self._appliers()[obj["kind"]]
        meta = obj["metadata"]
        resp = patch(
            meta["name"],
            meta["namespace"],
            obj,
            field_manager=self.FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
            _preload_content=False,
        )
        return str(self._json(resp).get("metadata", {}).get("resourceVersion") or "") or None

    def delete_if_exists(self, kind: str, namespace: str, name: str) -> None:
        _, delete = self._appliers()[kind]
        try:
            delete(name, namespace)
        except ApiException as e:
            if e.status != 404:
                raise

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(client.AppsV1Api(self.api).read_namespaced_deployment, name, namespace)
