"""Operator configuration (from environment variables, set by the chart; flags override some of them)."""

from __future__ import annotations

import os
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


def _seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment variable `name`, or the default when it is unset."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name}={raw!r} must be a positive number of seconds")
    return value


def _list(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = os.environ.get(name)
    return tuple(x.strip() for x in raw.split(",") if x.strip()) if raw else default


@dataclass(frozen=True)
class OperatorConfig:
    allowed_estimators: tuple[str, ...] = DEFAULT_ALLOWED_ESTIMATORS
    """scikit-learn import paths a spec may name (everything else is InvalidSpec)."""
    default_artifacts_uri: str = "pvc://modelfleet-artifacts"
    prometheus_url: str = "http://prometheus-operated.monitoring:9090"
    trainer_image: str = "ghcr.io/modelfleet/trainer:0.1.0"
    server_image: str = "ghcr.io/modelfleet/server:0.1.0"
    job_ttl_seconds: int = 86400
    """ttlSecondsAfterFinished of training Jobs (their results are already in the TrainingJob's status)."""
    stuck_pending_seconds: float = 600.0
    """A training pod unschedulable (or unable to pull its image) this long fails the TrainingJob."""
    pvc_mount_root: str = "/mnt/pvc"
    """Where training and serving pods mount the claims named by pvc:// URIs."""
    poll_seconds: float = 3.0
    """How often running TrainingJobs and MLModels are reconciled by level (timers)."""
    activity_seconds: float = 30.0
    """How often a serving model's request activity and GPU use are read from Prometheus."""
    namespaces: tuple[str, ...] = field(default_factory=tuple)
    """Namespaces to watch; empty means the whole cluster."""

    @classmethod
    def from_env(cls) -> OperatorConfig:
        """The configuration from the environment; raises ConfigError naming a variable that cannot be used."""
        return cls(
            allowed_estimators=_list("MODELFLEET_ALLOWED_ESTIMATORS", DEFAULT_ALLOWED_ESTIMATORS),
            default_artifacts_uri=os.environ.get("MODELFLEET_ARTIFACTS_URI", cls.default_artifacts_uri),
            prometheus_url=os.environ.get("MODELFLEET_PROMETHEUS_URL", cls.prometheus_url),
            trainer_image=os.environ.get("MODELFLEET_TRAINER_IMAGE", cls.trainer_image),
            server_image=os.environ.get("MODELFLEET_SERVER_IMAGE", cls.server_image),
            stuck_pending_seconds=_seconds("MODELFLEET_STUCK_PENDING_SECONDS", cls.stuck_pending_seconds),
            poll_seconds=_seconds("MODELFLEET_POLL_SECONDS", cls.poll_seconds),
            activity_seconds=_seconds("MODELFLEET_ACTIVITY_SECONDS", cls.activity_seconds),
            namespaces=_list("MODELFLEET_NAMESPACES", ()),
        )
