"""Operator configuration (from environment variables, set by the chart; flags override some of them)."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field

DEFAULT_ALLOWED_ESTIMATORS = (
    "sklearn.linear_model.LogisticRegression",
    "sklearn.linear_model.LinearRegression",
    "sklearn.linear_model.Ridge",
    "sklearn.linear_model.Lasso",
    "sklearn.linear_model.ElasticNet",
    "sklearn.ensemble.RandomForestClassifier",
    "sklearn.ensemble.RandomForestRegressor",
    "sklearn.ensemble.GradientBoostingClassifier",
    "sklearn.ensemble.GradientBoostingRegressor",
    "sklearn.ensemble.HistGradientBoostingClassifier",
    "sklearn.ensemble.HistGradientBoostingRegressor",
    "sklearn.ensemble.ExtraTreesClassifier",
    "sklearn.ensemble.ExtraTreesRegressor",
    "sklearn.tree.DecisionTreeClassifier",
    "sklearn.tree.DecisionTreeRegressor",
    "sklearn.neighbors.KNeighborsClassifier",
    "sklearn.neighbors.KNeighborsRegressor",
    "sklearn.svm.SVC",
    "sklearn.svm.SVR",
)


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the variable and the value."""


def _positive(name: str, default: float, unit: str) -> float:
    """A positive number (of `unit`) from the environment variable `name`, or the default when it is unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of {unit}") from None
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name}={raw!r} must be a positive number of {unit}")
    return value


def _seconds(name: str, default: float) -> float:
    return _positive(name, default, "seconds")


def _rate(name: str, default: float) -> float:
    return _positive(name, default, "requests per second")


def _count(name: str, default: int) -> int:
    """A whole number of at least 1 from the environment variable `name`, or the default when it is unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name}={raw!r} must be a whole number of at least 1")
    return int(raw)


ACCESS_MODES = ("ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(k|Ki|M|Mi|G|Gi|T|Ti|P|Pi)?$")


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name, "").strip() or default
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return raw


def _quantity(name: str, default: str) -> str:
    raw = os.environ.get(name, "").strip() or default
    if not QUANTITY.match(raw):
        raise ConfigError(f"{name}={raw!r} is not a storage size (e.g. 10Gi)")
    return raw


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false"):
        raise ConfigError(f"{name}={raw!r} must be true or false")
    return raw == "true"


def _list(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = os.environ.get(name)
    return tuple(x.strip() for x in raw.split(",") if x.strip()) if raw else default


@dataclass(frozen=True)
class OperatorConfig:
    allowed_estimators: tuple[str, ...] = DEFAULT_ALLOWED_ESTIMATORS
    """scikit-learn import paths a spec may name (everything else is InvalidSpec)."""
    default_artifacts_uri: str = "pvc://modelfleet-artifacts"
    """Where versions go when a spec names no location; a pvc:// claim here is created where missing."""
    artifacts_claim_create: bool = True
    """Create the default artifact claim in a namespace the first time a run there needs it."""
    artifacts_claim_size: str = "10Gi"
    """Size of a created default artifact claim."""
    artifacts_claim_storage_class: str = ""
    """StorageClass of a created default artifact claim (empty: the cluster's default class)."""
    artifacts_claim_access_mode: str = "ReadWriteOnce"
    """Access mode of a created default artifact claim (ReadWriteMany lets serving replicas on several nodes share
    it, where the StorageClass supports it)."""
    s3_endpoint: str = ""
    """The S3 endpoint of s3:// locations (an S3-compatible store's URL); empty: AWS, or the Secret's
    AWS_ENDPOINT_URL. Training and serving pods get it as AWS_ENDPOINT_URL unless their spec names its own Secret."""
    s3_secret_name: str = ""
    """The Secret (in each model's namespace) whose AWS_* keys training and serving pods of s3:// locations get, unless
    their spec names its own; empty: none (the pods' own identity, e.g. IRSA or workload identity)."""
    prometheus_url: str = "http://prometheus-operated.monitoring:9090"
    trainer_image: str = "ghcr.io/modelfleet/trainer:0.1.0"
    server_image: str = "ghcr.io/modelfleet/server:0.1.0"
    job_ttl_seconds: int = 86400
    """ttlSecondsAfterFinished of training Jobs (their results are already in the TrainingJob's status)."""
    stuck_pending_seconds: float = 600.0
    """A training pod unschedulable (or unable to pull its image) this long fails the TrainingJob."""
    pvc_mount_root: str = "/mnt/pvc"
    """Where training and serving pods mount the claims named by pvc:// URIs."""
    resync_seconds: float = 600.0
    """The slow safety-net pass every object gets when nothing happened to it (jittered by 10 % per object); every
    other pass follows a watch event or a due time."""
    debounce_seconds: float = 0.1
    """How long a key waits after a watch event, so that a burst of events (a pod starting) costs one pass."""
    workers: int = 8
    """Reconcile passes run at once (worker threads)."""
    api_qps: float = 100.0
    """Kubernetes API requests per second once the burst is spent (client-go's --kube-api-qps)."""
    api_burst: int = 200
    """Requests allowed at once (client-go's --kube-api-burst)."""
    stop_seconds: float = 10.0
    """On SIGTERM, how long passes in flight may take before they are abandoned (below the chart's
    terminationGracePeriodSeconds; an abandoned pass is idempotent and runs again after the restart)."""
    api_timeout_seconds: float = 60.0
    """The longest one Kubernetes API request may take (a stalled connection fails the pass, which is retried)."""
    watch_inactivity_seconds: float = 70.0
    """A watch that delivers nothing, not even a bookmark (sent every 60 s), this long is taken for dead and
    reconnected."""
    retain_version_records: bool = False
    """Keep ModelVersion records after their MLModel is deleted (no owner reference; marked modelDeletedAt) for
    audit; by default they are owned by the model and the garbage collector deletes them with it."""
    activity_seconds: float = 30.0
    """How often request activity and GPU use of serving models are read from Prometheus (per namespace)."""
    namespaces: tuple[str, ...] = field(default_factory=tuple)
    """Namespaces to watch; empty means the whole cluster."""

    def with_changes(self, **changes: object) -> OperatorConfig:
        """A copy with some fields replaced (command-line flags over the environment), checked like the rest."""
        for name in ("api_qps",):
            if name in changes and not float(changes[name]) > 0:  # type: ignore[arg-type]
                raise ConfigError(f"--{name.replace('_', '-')}={changes[name]} must be positive")
        for name in ("api_burst", "workers"):
            if name in changes and int(changes[name]) < 1:  # type: ignore[call-overload]
                raise ConfigError(f"--{name.replace('_', '-')}={changes[name]} must be at least 1")
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls) -> OperatorConfig:
        """The configuration from the environment; raises ConfigError naming a variable that cannot be used."""
        return cls(
            allowed_estimators=_list("MODELFLEET_ALLOWED_ESTIMATORS", DEFAULT_ALLOWED_ESTIMATORS),
            default_artifacts_uri=os.environ.get("MODELFLEET_ARTIFACTS_URI", cls.default_artifacts_uri),
            artifacts_claim_create=_flag("MODELFLEET_ARTIFACTS_CLAIM_CREATE", cls.artifacts_claim_create),
            artifacts_claim_size=_quantity("MODELFLEET_ARTIFACTS_CLAIM_SIZE", cls.artifacts_claim_size),
            artifacts_claim_storage_class=os.environ.get("MODELFLEET_ARTIFACTS_CLAIM_STORAGE_CLASS", "").strip(),
            artifacts_claim_access_mode=_choice(
                "MODELFLEET_ARTIFACTS_CLAIM_ACCESS_MODE", cls.artifacts_claim_access_mode, ACCESS_MODES
            ),
            s3_endpoint=os.environ.get("MODELFLEET_S3_ENDPOINT", "").strip(),
            s3_secret_name=os.environ.get("MODELFLEET_S3_SECRET", "").strip(),
            prometheus_url=os.environ.get("MODELFLEET_PROMETHEUS_URL", cls.prometheus_url),
            trainer_image=os.environ.get("MODELFLEET_TRAINER_IMAGE", cls.trainer_image),
            server_image=os.environ.get("MODELFLEET_SERVER_IMAGE", cls.server_image),
            stuck_pending_seconds=_seconds("MODELFLEET_STUCK_PENDING_SECONDS", cls.stuck_pending_seconds),
            resync_seconds=_seconds("MODELFLEET_RESYNC_SECONDS", cls.resync_seconds),
            debounce_seconds=_seconds("MODELFLEET_DEBOUNCE_SECONDS", cls.debounce_seconds),
            workers=_count("MODELFLEET_WORKERS", cls.workers),
            api_qps=_rate("MODELFLEET_API_QPS", cls.api_qps),
            api_burst=_count("MODELFLEET_API_BURST", cls.api_burst),
            stop_seconds=_seconds("MODELFLEET_STOP_SECONDS", cls.stop_seconds),
            activity_seconds=_seconds("MODELFLEET_ACTIVITY_SECONDS", cls.activity_seconds),
            api_timeout_seconds=_seconds("MODELFLEET_API_TIMEOUT_SECONDS", cls.api_timeout_seconds),
            watch_inactivity_seconds=_seconds("MODELFLEET_WATCH_INACTIVITY_SECONDS", cls.watch_inactivity_seconds),
            retain_version_records=_flag("MODELFLEET_RETAIN_VERSION_RECORDS", cls.retain_version_records),
            namespaces=_list("MODELFLEET_NAMESPACES", ()),
        )
