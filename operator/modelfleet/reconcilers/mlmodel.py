"""MLModel: observe its TrainingJobs -> compute versions and conditions (pure) -> create the next TrainingJob when no
run exists for the current training inputs. At most one TrainingJob per model is active at any time; editing only
serving fields never retrains (they are not part of the training fingerprint)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from modelfleet.api.access import APPROVED_BY, APPROVED_VERSION
from modelfleet.api.v1alpha1 import API_VERSION
from modelfleet.api.v1alpha1.mlmodel import (
    DriftSummary,
    MLModel,
    MLModelSpec,
    MLModelStatus,
    TrainedVersion,
    Utilization,
)
from modelfleet.api.v1alpha1.shared import LOWER_IS_BETTER, Validation
from modelfleet.api.v1alpha1.trainingjob import TrainingResult
from modelfleet.builders.serving import DESIRED_HASH, canary_name, desired_canary, desired_serving, endpoint
from modelfleet.builders.training import LABEL_FINGERPRINT, LABEL_MODEL, LABEL_TEAM, LABEL_VERSION, training_fingerprint
from modelfleet.clients.ports import Cluster
from modelfleet.config import OperatorConfig
from modelfleet.errors import InvalidSpec
from modelfleet.faults import crash_point
from modelfleet.metrics import GPU_HOURS
from modelfleet.reconcilers.canary import CanaryReading, plan_canary, promoted, step_due
from modelfleet.reconcilers.common import check_training
from modelfleet.reconcilers.outcome import Event, Outcome
from modelfleet.reconcilers.records import desired_record, documentation
from modelfleet.reconcilers.scaling import SCALE_UP_ANNOTATION, idle_deadline, pinned_replicas, record_activity
from modelfleet.reconcilers.serving import choose_version, rollout_complete, rollout_failure
from modelfleet.reconcilers.trainingjob import ARTIFACT_STORE_UNAVAILABLE
from modelfleet.reconcilers.utilization import Activity
from modelfleet.status.conditions import FALSE, TRUE, UNKNOWN, ConditionEditor, get_condition, rfc3339
from modelfleet.vocabulary import CANARY_COMPONENT, condition, is_true, owner_reference

READY_NEEDS = ("Trained", "Serving", "Approved")
MAX_VERSIONS = 20
MAX_NAME = 63  # the model's name is a label value on every child
DEFAULT_METRIC = {"classification": "accuracy", "regression": "r2"}


@dataclass
class ModelPlan:
    status: MLModelStatus
    create: dict[str, Any] | None = None
    apply: list[dict[str, Any]] = field(default_factory=list)  # serving objects to (re-)apply
    delete: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) of children no longer wanted
    events: list[Event] = field(default_factory=list)
    serving_gpu_seconds: float = 0.0  # observed this pass, for the cost counter


def _version_of(tj: dict[str, Any]) -> int:
    try:
        return int(tj["metadata"].get("labels", {}).get(LABEL_VERSION, "0"))
    except ValueError:
        return 0


def _reported_failure(name: str | None, trainingjobs: Sequence[dict[str, Any]]) -> int:
    """The version number of the failed run last reported (0 for none): from the run itself, or from its name
    (<model>-v<N>) once the run has been deleted."""
    if not name:
        return 0
    for tj in trainingjobs:
        if tj["metadata"]["name"] == name:
            return _version_of(tj)
    match = re.search(r"-v(\d+)$", name)
    return int(match.group(1)) if match else 0


def promotion(metrics: dict[str, float], task: str, validation: Validation) -> tuple[bool, str]:
    """(promotable, why not) against validation.minScore (for rmse and mae lower is better)."""
    if validation.min_score is None:
        return True, ""
    metric = validation.metric or DEFAULT_METRIC[task]
    if metric not in metrics:
        return False, f"the run reported no {metric}"
    value = metrics[metric]
    ok = value <= validation.min_score if metric in LOWER_IS_BETTER else value >= validation.min_score
    return ok, "" if ok else f"{metric}={value:.4g} does not meet validation.minScore {validation.min_score:g}"


def desired_model_trainingjob(
    model: MLModel, *, namespace: str, number: int, reason: str, fingerprint: str, config: OperatorConfig
) -> dict[str, Any]:
    """The TrainingJob that trains version `number` of the model, owned by it."""
    name = str(model.metadata["name"])
    spec = model.spec
    base = spec.artifacts.uri if spec.artifacts else f"{config.default_artifacts_uri}/{namespace}/{name}"
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingJob",
        "metadata": {
            "name": f"{name}-v{number}",
            "namespace": namespace,
            "labels": {
                LABEL_MODEL: name,
                LABEL_VERSION: str(number),
                LABEL_TEAM: spec.owner.team,
                LABEL_FINGERPRINT: fingerprint[:40],
                "app.kubernetes.io/part-of": "modelfleet",
                "app.kubernetes.io/managed-by": "modelfleet-operator",
            },
            "ownerReferences": [owner_reference("MLModel", name, str(model.metadata["uid"]))],
        },
        "spec": {
            "modelRef": {"name": name},
            "framework": spec.framework,
            "task": spec.task,
            "dataset": spec.dataset.wire(),
            "training": spec.training.wire(),
            "output": {
                "uri": f"{base.rstrip('/')}/v{number}",
                **({"secretName": spec.artifacts.secret_name} if spec.artifacts and spec.artifacts.secret_name else {}),
            },
            "reason": reason,
            "documentation": documentation(model).wire(),
        },
    }


def compute_phase(status: MLModelStatus) -> str:
    """A one-word summary for the printer column (never used for decisions)."""
    ready = get_condition(status.conditions, "Ready")
    trained = get_condition(status.conditions, "Trained")
    degraded = get_condition(status.conditions, "Degraded")
    if ready and ready.reason == "InvalidSpec":
        return "Invalid"
    if ready and ready.status == TRUE:
        return "Serving"
    if degraded and degraded.status == TRUE:
        return "Degraded"
    if status.active_training_job:
        return "Training"
    if trained and trained.status == TRUE:
        return "Trained"
    if trained and trained.reason == "TrainingFailed":
        return "Failed"
    return "Pending"


def desired_hash(obj: dict[str, Any] | None) -> str | None:
    """The hash of what an applied object was built from (None: no object, or none recorded)."""
    return ((obj or {}).get("metadata", {}).get("annotations") or {}).get(DESIRED_HASH)


def plan_serving(
    model: MLModel,
    status: MLModelStatus,
    c: ConditionEditor,
    plan: ModelPlan,
    *,
    deployment: dict[str, Any] | None,
    pods: Sequence[dict[str, Any]],
    config: OperatorConfig,
    pinned: int | None = None,
    canary_deployment: dict[str, Any] | None = None,
    canary_pods: Sequence[dict[str, Any]] = (),
    canary_reading: CanaryReading | None = None,
    now: datetime.datetime | None = None,
) -> None:
    """Serving conditions and objects: the chosen version's rollout (or its canary beside the serving version), and a
    rollback when its pods fail or its canary analysis does."""
    spec = model.spec
    name, namespace = str(model.metadata.get("name", "")), str(model.metadata.get("namespace", ""))
    target = choose_version(spec, status.versions)
    serving_now = status.serving_version.number if status.serving_version else None
    if target is not None and target.number != serving_now:
        failure = rollout_failure(deployment, pods, target.number)
        if failure:
            for v in status.versions:
                if v.number == target.number:
                    v.promotable, v.rejected_reason = False, f"rollout failed: {failure}"
            back = f"; version {serving_now} keeps serving" if serving_now else ""
            plan.events.append(
                Event("Warning", "RolloutFailed", f"version {target.number} never became ready{back}: {failure}")
            )
            c.set("Degraded", TRUE, "RolloutFailed", f"version {target.number}: {failure}")
            target = choose_version(spec, status.versions)
    serving_entry = next((v for v in status.versions if v.number == serving_now), status.serving_version)
    rollout = spec.serving.rollout
    canary_wanted = False
    if (
        rollout.strategy == "Canary"
        and target is not None
        and serving_entry is not None
        and target.number != serving_now
        and pinned != 0
        and now is not None
    ):
        trial = target
        target, canary_wanted = plan_canary(
            status,
            c,
            plan.events,
            rollout=rollout,
            target=trial,
            serving=serving_entry,
            canary_deployment=canary_deployment,
            canary_pods=canary_pods,
            reading=canary_reading,
            now=now,
        )
        if canary_wanted:
            want = desired_canary(
                name=name,
                namespace=namespace,
                uid=str(model.metadata.get("uid", "")),
                spec=spec,
                version=trial,
                config=config,
            )
            if desired_hash(canary_deployment) != desired_hash(want):
                plan.apply.append(want)
    else:
        status.canary = None
    if not canary_wanted and canary_deployment is not None:
        plan.delete.append(("Deployment", canary_name(name)))
    if target is None and serving_now is not None:
        # Nothing newer may be served (not approved, or rolled back): the version serving now keeps serving.
        target = next((v for v in status.versions if v.number == serving_now and v.promotable), None)
    if target is None:
        latest = status.latest_version
        if latest is None:
            c.set("Serving", UNKNOWN, "NoVersion", "nothing is served until a version is trained")
        elif spec.risk_class == "high":
            c.set("Serving", FALSE, "AwaitingApproval", f"version {latest.number} awaits approval")
        else:
            c.set("Serving", FALSE, "NoPromotableVersion", "no trained version may be served (see versions)")
        return
    desired = desired_serving(
        name=name,
        namespace=namespace,
        uid=str(model.metadata.get("uid", "")),
        spec=spec,
        version=target,
        config=config,
        pinned_replicas=pinned,
    )
    current_hash = desired_hash(deployment)
    wanted_replicas = desired[0]["spec"].get("replicas")  # absent when a HorizontalPodAutoscaler owns the count
    scaled_by_hand = (
        deployment is not None
        and wanted_replicas is not None
        and (deployment.get("spec") or {}).get("replicas") != wanted_replicas
    )
    if current_hash != desired_hash(desired[0]) or scaled_by_hand:
        if scaled_by_hand and current_hash == desired_hash(desired[0]):
            # The operator owns the count (serving.minReplicas, or zero when idle): a hand edit is undone, once.
            got = (deployment or {}).get("spec", {}).get("replicas")
            plan.events.append(
                Event(
                    "Normal",
                    "ReplicasRestored",
                    f"Deployment {name} had {got} replica(s); restored to {wanted_replicas}",
                )
            )
        plan.apply = desired + plan.apply
    on_trial = (
        f"; canary: version {status.canary.version} at {status.canary.weight}%" if status.canary is not None else ""
    )
    if pinned == 0 and serving_now == target.number:
        c.set(
            "Serving",
            FALSE,
            "ScaledToZero",
            f"version {target.number} is scaled to zero since "
            f"{(status.utilization or Utilization()).scaled_to_zero_time}; requests to the gateway scale it up, "
            "direct ones fail until then "
            f"(kubectl annotate mlm {name} {SCALE_UP_ANNOTATION}=$(date +%s) --overwrite)",
        )
    elif deployment is not None and rollout_complete(deployment, target.number):
        if serving_now != target.number:
            plan.events.append(Event("Normal", "Serving", f"version {target.number} is serving"))
        status.serving_version = target.model_copy()
        status.endpoint = endpoint(name, namespace)
        ready = (deployment.get("status") or {}).get("availableReplicas", 0)
        c.set("Serving", TRUE, "Serving", f"version {target.number}: {ready} replica(s) available{on_trial}")
        if status.latest_version and target.number == status.latest_version.number:
            c.set("Degraded", FALSE, "AsExpected")
    else:
        keeps = f"; version {serving_now} keeps serving" if serving_now else ""
        c.set("Serving", FALSE, "RollingOut", f"rolling out version {target.number}{keeps}")


def mirror_drift(status: MLModelStatus, c: ConditionEditor, policies: Sequence[dict[str, Any]]) -> None:
    """The model's Drifted condition and status.drift, from the DriftPolicies that watch it (their status is the one
    source; the MLModel only mirrors it, so there is a single writer per object)."""
    detected = [(p["metadata"]["name"], condition(p, "DriftDetected")) for p in policies]
    evaluated = [(name, d) for name, d in detected if d.get("status") in (TRUE, FALSE)]
    if not evaluated:
        c.set("Drifted", UNKNOWN, "NotEvaluated", "no DriftPolicy has evaluated this model")
        return
    drifting = [(name, d) for name, d in evaluated if d.get("status") == TRUE]
    if drifting:
        c.set(
            "Drifted", TRUE, "DriftDetected", "; ".join(f"DriftPolicy {n}: {d.get('message', '')}" for n, d in drifting)
        )
    elif len(evaluated) == len(detected):
        c.set("Drifted", FALSE, "WithinThresholds", f"{len(evaluated)} DriftPolicy(ies) see no drift")
    else:
        c.set("Drifted", UNKNOWN, "NotEvaluated", "not every DriftPolicy of this model could evaluate")
    best: tuple[float, str | None, str | None] | None = None
    for p in policies:
        st = p.get("status") or {}
        for check in st.get("checks") or []:
            value = check.get("value")
            if check.get("feature") and isinstance(value, int | float) and (best is None or value > best[0]):
                best = (float(value), check["feature"], st.get("lastEvaluationTime"))
    if best is not None:
        status.drift = DriftSummary(score=best[0], worst_feature=best[1], time=best[2])


def _annotation(model: MLModel, key: str) -> str | None:
    annotations = model.metadata.get("annotations")
    value = annotations.get(key) if isinstance(annotations, dict) else None
    return str(value) if value is not None else None


def record_approval(
    model: MLModel, status: MLModelStatus, now: datetime.datetime, events: list[Event]
) -> tuple[str, str] | None:
    """Writes who approved the approved version into its status record, once, from the annotations the
    modelfleet-approval-record admission policy set in the approving request (never from a field a user types).
    Returns (reason, message) when serving.approvedVersion names a version that cannot be served."""
    number = model.spec.serving.approved_version
    if model.spec.risk_class != "high" or number is None:
        return None
    entry = next((v for v in status.versions if v.number == number), None)
    if entry is None:
        known = ", ".join(str(v.number) for v in status.versions) or "none yet"
        if status.latest_version is None or number > status.latest_version.number:
            return "UnknownVersion", f"serving.approvedVersion {number} does not exist (versions: {known})"
        return "UnknownVersion", f"serving.approvedVersion {number} is not among the recorded versions ({known})"
    if not entry.promotable:
        return "NotPromotable", f"serving.approvedVersion {number} may not be served: {entry.rejected_reason}"
    by = _annotation(model, APPROVED_BY)
    if entry.approved_by is None and by and _annotation(model, APPROVED_VERSION) == str(number):
        entry.approved_by, entry.approved_at = by, rfc3339(now)
        events.append(Event("Normal", "Approved", f"version {number} approved by {by}"))
    return None


def _record_finished_runs(
    spec: MLModelSpec, status: MLModelStatus, tjs: Sequence[dict[str, Any]], events: list[Event]
) -> None:
    """Each run finished since the last pass: a succeeded one becomes a version (promotable or not), a failed one
    newer than the failure on record is reported once. `tjs` sorted by version."""
    versions = list(status.versions)
    recorded = {v.training_job for v in versions}
    reported_failure = _reported_failure(status.last_failed_training_job, tjs)
    for tj in tjs:
        tj_name, st = tj["metadata"]["name"], tj.get("status") or {}
        if is_true(tj, "Succeeded") and tj_name not in recorded and st.get("result"):
            result = TrainingResult.model_validate(st["result"])
            ok, why = promotion(result.metrics, spec.task, spec.training.validation)
            version = TrainedVersion(
                number=_version_of(tj),
                training_job=tj_name,
                artifact_uri=result.artifact_uri or "",
                artifact_digest=result.artifact_digest or "",
                dataset_digest=result.dataset_digest,
                metrics=result.metrics,
                reason=tj.get("spec", {}).get("reason"),
                promotable=ok,
                created_at=st.get("completionTime"),
                fingerprint=st.get("fingerprint"),
                rejected_reason=None if ok else why,
                drift_reference=result.drift_reference,
                features=result.features,
            )
            versions.append(version)
            metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.metrics.items()))
            cached = f" (cache hit of {st['cachedFrom']})" if st.get("cachedFrom") else ""
            events.append(
                Event("Normal", "VersionTrained", f"version {version.number} trained by {tj_name}{cached}: {metrics}")
            )
            if not ok:
                events.append(Event("Warning", "NotPromoted", f"version {version.number} will not be served: {why}"))
        elif is_true(tj, "Failed") and tj_name not in recorded and _version_of(tj) > reported_failure:
            # One Event per failed run, newest last: a failure is reported only when it is newer than the one on
            # record, so two failed runs never take turns being "new" on every pass.
            status.last_failed_training_job = tj_name
            reported_failure = _version_of(tj)
            failed = condition(tj, "Failed")
            keeps = f"; the model keeps version {versions[-1].number}" if versions else ""
            events.append(
                Event(
                    "Warning",
                    "TrainingFailed",
                    f"{tj_name} failed: {failed.get('reason')}: {failed.get('message', '')}{keeps}",
                )
            )
    versions.sort(key=lambda v: v.number)
    status.versions = versions[-MAX_VERSIONS:]
    status.latest_version = status.versions[-1] if status.versions else None


def _next_run(
    model: MLModel,
    status: MLModelStatus,
    tjs: Sequence[dict[str, Any]],
    *,
    fingerprint: str,
    config: OperatorConfig,
    events: list[Event],
) -> dict[str, Any] | None:
    """The TrainingJob to create: one when nothing runs and no run or version has these training inputs."""
    has_run = any(tj["metadata"].get("labels", {}).get(LABEL_FINGERPRINT) == fingerprint[:40] for tj in tjs) or any(
        v.fingerprint == fingerprint for v in status.versions
    )
    if status.active_training_job or has_run:
        return None
    number = max([v.number for v in status.versions] + [_version_of(tj) for tj in tjs], default=0) + 1
    last_dataset = tjs[-1].get("spec", {}).get("dataset", {}).get("version") if tjs else None
    reason = "initial" if not tjs else ("dataset" if last_dataset != model.spec.dataset.version else "spec-change")
    namespace = str(model.metadata.get("namespace", ""))
    create = desired_model_trainingjob(
        model, namespace=namespace, number=number, reason=reason, fingerprint=fingerprint, config=config
    )
    status.active_training_job = create["metadata"]["name"]
    events.append(
        Event(
            "Normal",
            "TrainingRequested",
            f"created TrainingJob {status.active_training_job} for version {number} (reason: {reason})",
        )
    )
    return create


def _set_trained(status: MLModelStatus, c: ConditionEditor, active: Sequence[dict[str, Any]]) -> None:
    latest = status.latest_version
    if latest is not None:
        training_note = f"; training {status.active_training_job}" if status.active_training_job else ""
        c.set("Trained", TRUE, "Trained", f"version {latest.number} trained by {latest.training_job}{training_note}")
    elif status.active_training_job:
        waiting = condition(active[0], "Queued") if active else {}
        if waiting.get("status") == TRUE and waiting.get("reason") == ARTIFACT_STORE_UNAVAILABLE:
            c.set(
                "Trained", FALSE, ARTIFACT_STORE_UNAVAILABLE, f"{status.active_training_job}: {waiting.get('message')}"
            )
        else:
            c.set("Trained", FALSE, "Training", f"training the first version ({status.active_training_job})")
    elif status.last_failed_training_job:
        c.set(
            "Trained",
            FALSE,
            "TrainingFailed",
            f"{status.last_failed_training_job} failed; fix the spec or data "
            "(a changed spec or dataset.version trains again)",
        )
    else:
        c.default("Trained", UNKNOWN, "NotTrainedYet", "no version has been trained yet")


def _set_approved(
    model: MLModel, status: MLModelStatus, c: ConditionEditor, now: datetime.datetime, events: list[Event]
) -> None:
    spec, latest, name = model.spec, status.latest_version, str(model.metadata.get("name", ""))
    approval_problem = record_approval(model, status, now, events)
    if spec.risk_class != "high":
        c.set("Approved", TRUE, "NotRequired", f"riskClass {spec.risk_class} needs no approval")
    elif approval_problem:
        c.set("Approved", FALSE, approval_problem[0], approval_problem[1])
    elif latest is None:
        c.set("Approved", UNKNOWN, "AwaitingVersion", "riskClass high: each new version needs serving.approvedVersion")
    elif spec.serving.approved_version == latest.number:
        by = next((f" by {v.approved_by}" for v in status.versions if v.number == latest.number and v.approved_by), "")
        c.set("Approved", TRUE, "Approved", f"version {latest.number} is approved{by}")
    else:
        c.set(
            "Approved",
            FALSE,
            "AwaitingApproval",
            f"version {latest.number} awaits approval: kubectl patch mlm "
            f'{name} --type=merge -p \'{{"spec":{{"serving":{{"approvedVersion":{latest.number}}}}}}}\'',
        )


def _record_gpu_use(
    status: MLModelStatus,
    spec: MLModelSpec,
    tjs: Sequence[dict[str, Any]],
    deployment: dict[str, Any] | None,
    activity: Activity | None,
    now: datetime.datetime,
) -> float:
    """Folds serving GPU-seconds since the last reading into the status; returns them (for the counter)."""
    available = int(((deployment or {}).get("status") or {}).get("availableReplicas") or 0)
    serving_gpu_seconds = record_activity(status, activity, now, serving_gpus=available * spec.serving.resources.gpu)
    training_gpu_seconds = sum(float((tj.get("status") or {}).get("gpuSeconds") or 0.0) for tj in tjs)
    if training_gpu_seconds or (status.utilization and status.utilization.serving_gpu_seconds):
        u = status.utilization = status.utilization or Utilization()
        u.gpu_hours = round((training_gpu_seconds + (u.serving_gpu_seconds or 0.0)) / 3600.0, 4)
    return serving_gpu_seconds


def plan_mlmodel(
    model: MLModel,
    trainingjobs: Sequence[dict[str, Any]],
    *,
    fingerprint: str,
    generation: int | None,
    config: OperatorConfig,
    now: datetime.datetime,
    deployment: dict[str, Any] | None = None,
    serving_pods: Sequence[dict[str, Any]] = (),
    drift_policies: Sequence[dict[str, Any]] = (),
    activity: Activity | None = None,
    canary_deployment: dict[str, Any] | None = None,
    canary_pods: Sequence[dict[str, Any]] = (),
    canary_reading: CanaryReading | None = None,
) -> ModelPlan:
    """Pure: versions, conditions, Events and the TrainingJob to create (if any)."""
    spec = model.spec
    status = model.status.model_copy(deep=True)
    plan = ModelPlan(status=status)
    c = ConditionEditor(status.conditions, now=now, generation=generation)
    tjs = sorted(trainingjobs, key=_version_of)
    _record_finished_runs(spec, status, tjs, plan.events)
    active = [tj for tj in tjs if not (is_true(tj, "Succeeded") or is_true(tj, "Failed"))]
    status.active_training_job = active[0]["metadata"]["name"] if active else None
    plan.create = _next_run(model, status, tjs, fingerprint=fingerprint, config=config, events=plan.events)
    _set_trained(status, c, active)
    c.default("Degraded", FALSE, "AsExpected")
    plan.serving_gpu_seconds = _record_gpu_use(status, spec, tjs, deployment, activity, now)
    status.conditions = c.items  # the scaling rules read the Serving condition as it stands
    pinned = pinned_replicas(
        spec,
        status,
        name=str(model.metadata.get("name", "")),
        activity=activity,
        policies=drift_policies,
        scale_up_request=_annotation(model, SCALE_UP_ANNOTATION),
        now=now,
        events=plan.events,
    )
    plan_serving(
        model,
        status,
        c,
        plan,
        deployment=deployment,
        pods=serving_pods,
        config=config,
        pinned=pinned,
        canary_deployment=canary_deployment,
        canary_pods=canary_pods,
        canary_reading=canary_reading,
        now=now,
    )
    _set_approved(model, status, c, now, plan.events)
    mirror_drift(status, c, drift_policies)
    status.conditions = c.summarize_ready(READY_NEEDS, negative=("Degraded",))
    status.observed_generation = generation
    status.phase = compute_phase(status)
    return plan


def create_records(
    model: MLModel, status: MLModelStatus, trainingjobs: Sequence[dict[str, Any]], kube: Cluster, config: OperatorConfig
) -> None:
    """One ModelVersion record per recorded version whose TrainingJob is still there to give its lineage (a record
    is written once; 409 means an earlier pass wrote it)."""
    namespace, uid = str(model.metadata["namespace"]), str(model.metadata["uid"])
    have = kube.recorded_versions(namespace, str(model.metadata["name"]), uid)
    by_name = {tj["metadata"]["name"]: tj for tj in trainingjobs}
    for version in status.versions:
        tj = by_name.get(version.training_job)
        if version.number not in have and tj is not None:
            record = desired_record(model, version, tj, retain=config.retain_version_records)
            kube.create_custom(namespace, "modelversions", record)
            crash_point("after-record-create")


def reconcile_mlmodel(
    model: MLModel,
    generation: int | None,
    kube: Cluster,
    config: OperatorConfig,
    now: datetime.datetime,
    activity: Activity | None = None,
    canary_reader: Callable[[str, str, str], CanaryReading | None] | None = None,
) -> Outcome:
    """observe (the cluster port: the watch-fed cache in the operator) -> plan -> write the children. `activity` is
    the model's latest reading from the namespace's Prometheus scan (None before the first); `canary_reader`
    (namespace, model, window) reads a canary's figures when its step is due."""
    spec = model.spec
    name = str(model.metadata["name"])
    if len(name) > MAX_NAME:
        raise InvalidSpec(f"metadata.name must be at most {MAX_NAME} characters (it is a label value on every child)")
    check_training(spec.framework, spec.training, spec.dataset, config)
    namespace, uid = str(model.metadata["namespace"]), str(model.metadata["uid"])
    owned = [
        tj
        for tj in kube.list_custom(namespace, "trainingjobs", f"{LABEL_MODEL}={name}")
        if any(o.get("uid") == uid for o in tj["metadata"].get("ownerReferences") or [])
    ]
    fingerprint = training_fingerprint(spec.framework, spec.task, spec.dataset, spec.training, config.trainer_image)
    deployment, pods, canary_deployment, canary_pods = None, [], None, []
    if model.status.versions or any((tj.get("status") or {}).get("result") for tj in owned):
        deployment = kube.get_deployment(namespace, name)
        pods = kube.list_pods(namespace, f"{LABEL_MODEL}={name},app.kubernetes.io/component=serving")
        canary_deployment = kube.get_deployment(namespace, canary_name(name))
        if canary_deployment is not None:
            canary_pods = kube.list_pods(
                namespace, f"{LABEL_MODEL}={name},app.kubernetes.io/component={CANARY_COMPONENT}"
            )
    reading = None
    trial = model.status.canary
    rollout = spec.serving.rollout
    if (
        trial is not None
        and canary_reader is not None
        and not promoted(trial, rollout)
        and now >= step_due(trial, rollout)
    ):
        reading = canary_reader(namespace, name, rollout.interval)
    policies = kube.list_custom(namespace, "driftpolicies", fields={"spec.modelRef.name": name})
    plan = plan_mlmodel(
        model,
        owned,
        fingerprint=fingerprint,
        generation=generation,
        config=config,
        now=now,
        deployment=deployment,
        serving_pods=pods,
        drift_policies=policies,
        activity=activity if deployment is not None else None,
        canary_deployment=canary_deployment,
        canary_pods=canary_pods,
        canary_reading=reading,
    )
    outcome = Outcome(plan.status, plan.events)
    if plan.serving_gpu_seconds:
        added = plan.serving_gpu_seconds
        outcome.on_landed.append(lambda: GPU_HOURS.labels(namespace, name, "serving").inc(added / 3600.0))
    if plan.create is not None:
        created = kube.create_custom(namespace, "trainingjobs", plan.create)
        crash_point("after-trainingjob-create")
        # Said only by the pass that created it; a pass that found it made already (a 409) says nothing.
        outcome.events = [
            replace(e, action=True) if e.reason == "TrainingRequested" else e
            for e in outcome.events
            if created is not None or e.reason != "TrainingRequested"
        ]
    create_records(model, plan.status, owned, kube, config)
    if plan.apply:
        kinds = {o["kind"] for o in plan.apply}
        for obj in plan.apply:
            kube.apply(obj)
            crash_point("after-serving-apply")  # between the Deployment and the Service
        for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget"):
            # No longer wanted (e.g. maxReplicas lowered); on the first rollout there is nothing to delete.
            if kind not in kinds and deployment is not None:
                kube.delete_if_exists(kind, namespace, name)
    for kind, child in plan.delete:
        kube.delete_if_exists(kind, namespace, child)
    deadline = idle_deadline(spec, plan.status, activity) if deployment is not None else None
    if deadline is not None:  # scale to zero is due then, unless a request comes first
        outcome.requeue_after = max(1.0, (deadline - now).total_seconds())
    trial = plan.status.canary
    if trial is not None and not promoted(trial, rollout):  # the step's analysis is due then
        due = max(1.0, (step_due(trial, rollout) - now).total_seconds())
        outcome.requeue_after = min(due, outcome.requeue_after or due)
    return outcome
