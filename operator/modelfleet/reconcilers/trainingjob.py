"""TrainingJob: observe the Job and its pods -> compute the status (pure) -> apply (create the Job at most once).

A succeeded TrainingJob with the same fingerprint whose artifact still exists is reused: no Job, CacheHit=True.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from modelfleet.api.v1alpha1.trainingjob import TrainingJob, TrainingJobStatus, TrainingResult, TrainingUtilization
from modelfleet.builders.training import (
    KUEUE_QUEUE_LABEL,
    TRAINER_CONTAINER,
    UnsupportedUri,
    desired_training_job,
    job_name,
    training_fingerprint,
)
from modelfleet.clients.ports import Cluster, PrometheusFor
from modelfleet.config import OperatorConfig
from modelfleet.errors import InvalidSpec
from modelfleet.faults import crash_point
from modelfleet.metrics import GPU_HOURS, TRAININGJOBS_FINISHED
from modelfleet.reconcilers.artifact_store import ensure_default_claim
from modelfleet.reconcilers.common import check_training
from modelfleet.reconcilers.outcome import Event, Outcome
from modelfleet.reconcilers.utilization import read_training_gpu_percent
from modelfleet.status.conditions import FALSE, TRUE, UNKNOWN, ConditionEditor, get_condition, parse_time, rfc3339
from modelfleet.vocabulary import is_true

TERMINAL = ("Succeeded", "Failed")
ARTIFACT_STORE_UNAVAILABLE = "ArtifactStoreUnavailable"
ARTIFACT_STORE_RETRY_SECONDS = 30.0
STARTED = ("TrainingStarted", "JobRecreated", "ArtifactStoreCreated")
# metav1.Condition's reason: what the trainer may name as the reason it failed.
CONDITION_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]{0,62}[A-Za-z0-9_])?$")
PULL_ERRORS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError")


@dataclass
class TrainingObservation:
    job: dict[str, Any] | None
    pods: list[dict[str, Any]] = field(default_factory=list)
    cache_source: dict[str, Any] | None = None  # a succeeded TrainingJob with our fingerprint, artifact present
    artifact_store_problem: str | None = None  # why the default artifact claim cannot be had (no Job until it can)
    workload: dict[str, Any] | None = None  # Kueue's Workload for the Job, where Kueue manages it


def kueue_waiting(workload: Mapping[str, Any] | None, queue: str | None) -> tuple[str, str]:
    """Why a suspended Job waits, in Kueue's own words once its Workload says: the reason and message of
    QuotaReserved=False (Pending: "couldn't assign flavors ... insufficient unused quota for nvidia.com/gpu ...";
    Inadmissible: "LocalQueue x doesn't exist"), or the admission checks still open after quota was reserved."""
    conditions = {c.get("type"): c for c in ((workload or {}).get("status") or {}).get("conditions") or []}
    reserved = conditions.get("QuotaReserved") or {}
    if reserved.get("status") == FALSE and reserved.get("message"):
        return str(reserved.get("reason") or "Pending"), str(reserved["message"])
    if reserved.get("status") == TRUE and (conditions.get("Admitted") or {}).get("status") != TRUE:
        return "QuotaReserved", str(reserved.get("message") or "quota reserved; waiting for admission checks")
    if queue:
        return "AwaitingAdmission", f"the Job is suspended until Kueue admits it (queue {queue})"
    return "AwaitingAdmission", "the Job is suspended"


def kueue_admitted(workload: Mapping[str, Any] | None) -> str:
    """Which ClusterQueue admitted the Job ("" where Kueue does not manage it)."""
    cluster_queue = (((workload or {}).get("status") or {}).get("admission") or {}).get("clusterQueue")
    return f"admitted by Kueue's ClusterQueue {cluster_queue}" if cluster_queue else ""


@dataclass
class TrainingPlan:
    status: TrainingJobStatus
    create_job: bool = False
    delete_job: bool = False
    events: list[Event] = field(default_factory=list)


def is_terminal(status: TrainingJobStatus) -> bool:
    return any((c := get_condition(status.conditions, t)) is not None and c.status == TRUE for t in TERMINAL)


def output_uri(tj: TrainingJob, namespace: str, config: OperatorConfig) -> str:
    return tj.spec.output.uri if tj.spec.output else f"{config.default_artifacts_uri}/{namespace}/{tj_name(tj)}"


def tj_name(tj: TrainingJob) -> str:
    return str(tj.metadata.get("name", ""))


def fingerprint_of(tj: TrainingJob, config: OperatorConfig) -> str:
    """The recorded fingerprint once a Job exists (so a later configuration change never starts a second Job),
    else the one computed from the spec."""
    if tj.status.fingerprint:
        return tj.status.fingerprint
    annotations = tj.metadata.get("annotations") or {}
    salt = str(annotations.get("modelfleet.io/fingerprint-salt", "")) if isinstance(annotations, dict) else ""
    s = tj.spec
    return training_fingerprint(s.framework, s.task, s.dataset, s.training, config.trainer_image, salt)


def find_cache_source(
    candidates: Sequence[dict[str, Any]], fingerprint: str, exclude: str, exists: Callable[[str], bool | None]
) -> dict[str, Any] | None:
    """The oldest succeeded TrainingJob with this fingerprint whose artifact is not known to be gone. Presence is
    asked oldest first and only until one is there: a fleet of cache hits of one run costs one look, not one per
    earlier hit."""

    def recorded(obj: dict[str, Any]) -> bool:
        st = obj.get("status") or {}
        return (
            obj["metadata"]["name"] != exclude
            and st.get("fingerprint") == fingerprint
            and is_true(obj, "Succeeded")
            and bool((st.get("result") or {}).get("artifactUri"))
        )

    found = sorted((o for o in candidates if recorded(o)), key=lambda o: o["metadata"].get("creationTimestamp", ""))
    return next((o for o in found if exists(str(o["status"]["result"]["artifactUri"])) is not False), None)


def parse_result(message: str | None) -> tuple[TrainingResult | None, str]:
    """The trainer's termination message -> (result, "") or (None, reason)."""
    if not message:
        return None, "the training pod finished without a result (no termination message)"
    try:
        payload = json.loads(message)
    except ValueError:
        return None, f"the training pod's termination message is not a result: {message[:200]}"
    if not isinstance(payload, dict):
        return None, "the training pod's termination message is not a JSON object"
    if "error" in payload:
        return None, str(payload["error"])
    try:
        return TrainingResult.model_validate(payload), ""
    except ValidationError as e:
        return None, f"malformed training result: {e.errors()[0]['msg']}"


def failure_reason(message: str | None) -> str:
    """The reason the trainer gave for its failure (ArtifactUnavailable...), TrainingError when it gave none usable."""
    try:
        reason = json.loads(message or "").get("reason")
    except (ValueError, AttributeError):
        return "TrainingError"
    return reason if isinstance(reason, str) and CONDITION_REASON.match(reason) else "TrainingError"


def _trainer_state(pod: dict[str, Any]) -> dict[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == TRAINER_CONTAINER:
            return dict(cs)
    return {}


def _newest(pods: Sequence[dict[str, Any]], phase: str) -> dict[str, Any] | None:
    matching = [p for p in pods if (p.get("status") or {}).get("phase") == phase]
    return max(matching, key=lambda p: p["metadata"].get("creationTimestamp", ""), default=None)


def failure_of(job_condition: dict[str, Any], pods: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """(reason, message) of a failed Job, from the most specific source: the trainer's own message, the container's
    reason (OOMKilled), then the Job's condition."""
    if job_condition.get("reason") == "DeadlineExceeded":
        return "DeadlineExceeded", f"training exceeded spec.training.timeout: {job_condition.get('message', '')}"
    pod = _newest(pods, "Failed")
    term = (_trainer_state(pod).get("state") or {}).get("terminated") or {} if pod else {}
    if term.get("reason") == "OOMKilled":
        return "OOMKilled", "the trainer ran out of memory; raise spec.training.resources.memory"
    result, problem = parse_result(term.get("message"))
    if term and result is None and term.get("message"):
        return failure_reason(term.get("message")), problem
    if term:
        return "TrainingError", f"the trainer exited with code {term.get('exitCode')} ({term.get('reason', '')})"
    return str(job_condition.get("reason") or "JobFailed"), str(job_condition.get("message") or "the Job failed")


def stuck_reason(pod: dict[str, Any]) -> tuple[str, str, datetime.datetime | None] | None:
    """Why a pending pod is not starting: unschedulable, or its image cannot be pulled."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == FALSE and cond.get("reason") == "Unschedulable":
            return "Unschedulable", str(cond.get("message", "")), parse_time(cond.get("lastTransitionTime"))
    waiting = (_trainer_state(pod).get("state") or {}).get("waiting") or {}
    if waiting.get("reason") in PULL_ERRORS:
        return (
            str(waiting["reason"]),
            str(waiting.get("message", "")),
            parse_time(pod["metadata"].get("creationTimestamp")),
        )
    return None


def _metrics_text(result: TrainingResult) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.metrics.items())) or "no metrics"


def plan_trainingjob(
    tj: TrainingJob,
    obs: TrainingObservation,
    *,
    fingerprint: str,
    name_of_job: str,
    generation: int | None,
    config: OperatorConfig,
    now: datetime.datetime,
) -> TrainingPlan:
    """Pure: the status, the actions and the Events that follow from what was observed."""
    status = tj.status.model_copy(deep=True)
    status.observed_generation = generation
    c = ConditionEditor(status.conditions, now=now, generation=generation)
    plan = TrainingPlan(status=status)
    if is_terminal(status):
        return plan  # a finished run is a record: nothing about it changes any more
    gpus = tj.spec.training.resources.gpu
    previous_queued = get_condition(status.conditions, "Queued")
    status.fingerprint = fingerprint
    for ctype, st, reason in (
        ("Queued", UNKNOWN, "NotStarted"),
        ("Running", UNKNOWN, "NotStarted"),
        ("Succeeded", UNKNOWN, "NotStarted"),
        ("Failed", FALSE, "NotFailed"),
        ("CacheHit", UNKNOWN, "NotChecked"),
    ):
        c.default(ctype, st, reason)

    def finish(ok: bool, reason: str, message: str, completed: datetime.datetime) -> None:
        c.set("Succeeded", TRUE if ok else FALSE, reason, message)
        c.set("Failed", FALSE if ok else TRUE, "NotFailed" if ok else reason, "" if ok else message)
        c.set("Running", FALSE, "Completed" if ok else reason)
        c.set("Queued", FALSE, "Admitted", kueue_admitted(obs.workload))
        status.phase = "Succeeded" if ok else "Failed"
        status.completion_time = rfc3339(completed)
        start = parse_time(status.start_time)
        status.gpu_seconds = round(max(0.0, (completed - start).total_seconds()) * gpus, 3) if start else 0.0
        plan.events.append(Event("Normal" if ok else "Warning", "Succeeded" if ok else "Failed", message))

    job = obs.job
    if job is None:
        if status.job_name is None and obs.cache_source is not None:
            src = obs.cache_source
            cached = TrainingResult.model_validate(src["status"]["result"])
            status.result, status.cached_from = cached, src["metadata"]["name"]
            status.attempts, status.start_time = 0, rfc3339(now)
            message = f"reused the result of TrainingJob {status.cached_from} (same fingerprint); no Job was created"
            c.set("CacheHit", TRUE, "CacheHit", message)
            plan.events.append(Event("Normal", "CacheHit", message))
            finish(True, "CacheHit", f"cached result: {_metrics_text(cached)}", now)
            plan.events.pop()  # the CacheHit Event already says it
        elif obs.artifact_store_problem:
            c.set("CacheHit", FALSE, "NoCachedResult", "no succeeded TrainingJob has this fingerprint")
            c.set("Queued", TRUE, ARTIFACT_STORE_UNAVAILABLE, obs.artifact_store_problem)
            c.set("Running", FALSE, ARTIFACT_STORE_UNAVAILABLE)
            status.phase = "Pending"
            if not previous_queued or previous_queued.reason != ARTIFACT_STORE_UNAVAILABLE:
                plan.events.append(Event("Warning", ARTIFACT_STORE_UNAVAILABLE, obs.artifact_store_problem))
        else:
            recreated = status.job_name is not None
            status.job_name = name_of_job
            plan.create_job = True
            c.set("CacheHit", FALSE, "NoCachedResult", "no succeeded TrainingJob has this fingerprint")
            c.set("Queued", TRUE, "JobCreated", f"Job {name_of_job} created")
            status.phase = "Pending"
            plan.events.append(
                Event(
                    "Normal",
                    "JobRecreated" if recreated else "TrainingStarted",
                    f"{'re' if recreated else ''}created Job {name_of_job}"
                    f"{f' requesting {gpus} GPU(s)' if gpus else ''}",
                )
            )
    else:
        jst = job.get("status") or {}
        jconds = {x.get("type"): x for x in jst.get("conditions") or [] if x.get("status") == TRUE}
        status.job_name = job["metadata"]["name"]
        status.attempts = int(jst.get("active", 0)) + int(jst.get("succeeded", 0)) + int(jst.get("failed", 0))
        status.start_time = jst.get("startTime") or status.start_time
        if "Complete" in jconds or "SuccessCriteriaMet" in jconds:
            pod = _newest(obs.pods, "Succeeded")
            term = (_trainer_state(pod).get("state") or {}).get("terminated") or {} if pod else {}
            result, problem = parse_result(term.get("message"))
            completed = parse_time(jst.get("completionTime")) or now
            if result is not None:
                status.result = result
                finish(True, "Trained", f"trained: {_metrics_text(result)}", completed)
            else:
                finish(False, "NoResult", problem, completed)
        elif "Failed" in jconds or "FailureTarget" in jconds:
            cond = jconds.get("Failed") or jconds["FailureTarget"]
            reason, message = failure_of(cond, obs.pods)
            finish(False, reason, message, parse_time(cond.get("lastTransitionTime")) or now)
        elif job["spec"].get("suspend"):
            queue = job["metadata"].get("labels", {}).get(KUEUE_QUEUE_LABEL)
            reason, message = kueue_waiting(obs.workload, queue)
            c.set("Queued", TRUE, reason, message)
            c.set("Running", FALSE, "Suspended")
            status.phase = "Queued"
        else:
            running = _newest(obs.pods, "Running")
            pending = _newest(obs.pods, "Pending")
            stuck = stuck_reason(pending) if pending and not running else None
            admitted = kueue_admitted(obs.workload)
            if running:
                c.set("Queued", FALSE, "Admitted", admitted)
                c.set(
                    "Running",
                    TRUE,
                    "Running",
                    f"pod {running['metadata']['name']} on node {running['spec'].get('nodeName', '?')}",
                )
                status.phase = "Running"
            elif stuck:
                reason, message, since = stuck
                if since and (now - since).total_seconds() > config.stuck_pending_seconds:
                    plan.delete_job = True
                    finish(False, reason, f"pending for more than {config.stuck_pending_seconds:.0f}s: {message}", now)
                else:
                    # Admitted by Kueue (quota held) and still waiting for a node: both are said.
                    c.set("Queued", TRUE, reason, "; ".join(filter(None, [admitted, message])))
                    c.set("Running", FALSE, reason)
                    status.phase = "Queued"
                    if not previous_queued or previous_queued.reason != reason:
                        plan.events.append(Event("Warning", reason, message))
            else:
                pod_state = "the pod is starting" if pending else "waiting for the Job's pod"
                message = "; ".join(filter(None, [admitted, pod_state]))
                c.set("Queued", FALSE, "Admitted" if pending else "JobCreated", message)
                c.set("Running", UNKNOWN, "Starting")
                status.phase = "Pending"
    status.conditions = c.summarize_ready(("Succeeded",), negative=("Failed",))
    return plan


def finished_counters(tj: TrainingJob, before: TrainingJobStatus, after: TrainingJobStatus) -> list[Any]:
    """When a run has just finished: the finished-runs counter and its GPU-hours (counted once the status lands)."""
    if is_terminal(before) or not is_terminal(after):
        return []
    namespace = str(tj.metadata.get("namespace", ""))
    model = tj.spec.model_ref.name if tj.spec.model_ref else ""
    result = "cachehit" if after.cached_from else ("succeeded" if after.result else "failed")
    counters = [lambda: TRAININGJOBS_FINISHED.labels(namespace, model, result).inc()]
    hours = (after.gpu_seconds or 0.0) / 3600.0
    if hours:
        counters.append(lambda: GPU_HOURS.labels(namespace, model, "training").inc(hours))
    return counters


def record_gpu_use(
    tj: TrainingJob,
    before: TrainingJobStatus,
    after: TrainingJobStatus,
    config: OperatorConfig,
    prometheus_for: PrometheusFor | None,
) -> None:
    """When a run has just finished on GPUs: its GPU-hours and average GPU utilisation in the status (one PromQL
    query, once per run)."""
    if is_terminal(before) or not is_terminal(after) or not after.gpu_seconds:
        return
    namespace = str(tj.metadata.get("namespace", ""))
    after.utilization = TrainingUtilization(gpu_hours=round(after.gpu_seconds / 3600.0, 4))
    start, end = parse_time(after.start_time), parse_time(after.completion_time)
    if prometheus_for is not None and after.job_name and start and end:
        after.utilization.gpu_percent = read_training_gpu_percent(
            prometheus_for(config.prometheus_url), namespace, after.job_name, start, end
        )


def requeue_after(
    plan: TrainingPlan, pods: Sequence[dict[str, Any]], config: OperatorConfig, now: datetime.datetime
) -> float | None:
    """When time alone changes this run's state: a pod stuck pending fails the run at stuck_pending_seconds, and a
    refused artifact claim is asked for again. Everything else arrives as a watch event."""
    if is_terminal(plan.status):
        return None
    queued = get_condition(plan.status.conditions, "Queued")
    if queued is not None and queued.reason == ARTIFACT_STORE_UNAVAILABLE:
        return ARTIFACT_STORE_RETRY_SECONDS
    stuck = [s for p in pods if (p.get("status") or {}).get("phase") == "Pending" and (s := stuck_reason(p))]
    since = [s[2] for s in stuck if s[2] is not None]
    if since:
        left = config.stuck_pending_seconds - (now - min(since)).total_seconds()
        return max(1.0, left + 0.5)
    return None


def reconcile_trainingjob(
    tj: TrainingJob,
    generation: int | None,
    kube: Cluster,
    config: OperatorConfig,
    now: datetime.datetime,
    prometheus_for: PrometheusFor | None = None,
) -> Outcome:
    """observe (through the cluster port: the watch-fed cache in the operator) -> plan -> apply."""
    spec = tj.spec
    check_training(spec.framework, spec.training, spec.dataset, config)
    if is_terminal(tj.status):
        plan = plan_trainingjob(
            tj,
            TrainingObservation(job=None),
            fingerprint=tj.status.fingerprint or "",
            name_of_job=tj.status.job_name or "",
            generation=generation,
            config=config,
            now=now,
        )
        return Outcome(plan.status, plan.events)
    namespace = str(tj.metadata["namespace"])
    name = tj_name(tj)
    fingerprint = fingerprint_of(tj, config)
    name_of_job = tj.status.job_name or job_name(name, fingerprint)
    job = kube.get_job(namespace, name_of_job)
    pods = kube.list_pods(namespace, f"batch.kubernetes.io/job-name={name_of_job}") if job else []
    cache = None
    # A drift retrain exists to learn from the data as it is now: it must never reuse an earlier run's result, even
    # when the dataset URI and the spec are unchanged (the file behind the URI is what changed).
    if job is None and tj.status.job_name is None and spec.reason != "drift":
        cache = find_cache_source(
            # Runs that trained (a cache hit records the run it reused, whose artifact it points at): a fleet of
            # hits of one run makes one candidate, not thousands.
            kube.list_custom(
                namespace, "trainingjobs", fields={"status.fingerprint": fingerprint, "status.cachedFrom": ""}
            ),
            fingerprint,
            name,
            lambda uri: kube.artifact_exists(namespace, uri),
        )
    workload = kube.workload_of_job(namespace, str(job["metadata"].get("uid", ""))) if job else None
    observed = TrainingObservation(job, pods, cache, workload=workload)

    def planned() -> TrainingPlan:
        return plan_trainingjob(
            tj,
            observed,
            fingerprint=fingerprint,
            name_of_job=name_of_job,
            generation=generation,
            config=config,
            now=now,
        )

    plan = planned()
    if plan.create_job:
        # The Job's pod mounts the output claim: the default one is made to exist first, or the run waits saying why.
        store = ensure_default_claim(kube, namespace, output_uri(tj, namespace, config), config)
        if store.problem:
            observed.artifact_store_problem = store.problem
            plan = planned()
        plan.events[:0] = store.events
    if plan.create_job:
        labels = tj.metadata.get("labels") or {}
        try:
            manifest = desired_training_job(
                name=name,
                namespace=namespace,
                uid=str(tj.metadata["uid"]),
                labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
                spec=spec,
                output_uri=output_uri(tj, namespace, config),
                fingerprint=fingerprint,
                config=config,
            )
        except UnsupportedUri as e:
            raise InvalidSpec(str(e)) from e
        kube.apply(manifest)
        crash_point("after-job-create")  # fault-injection tests stop the operator here, before status is written
        # Said by the pass that created the Job, whatever happens to the status patch after it.
        plan.events = [replace(e, action=True) if e.reason in STARTED else e for e in plan.events]
    if plan.delete_job:
        kube.delete_job(namespace, name_of_job)
    record_gpu_use(tj, tj.status, plan.status, config, prometheus_for)
    outcome = Outcome(plan.status, plan.events, requeue_after(plan, pods, config, now))
    outcome.on_landed = finished_counters(tj, tj.status, plan.status)
    return outcome
