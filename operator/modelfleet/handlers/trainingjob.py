"""TrainingJob handlers: create, spec update and operator restart all run the same level-based reconcile."""

from __future__ import annotations

from typing import Any

import kopf

from modelfleet.api.v1alpha1 import GROUP, VERSION, TrainingJob
from modelfleet.handlers.common import run_reconcile
from modelfleet.reconcilers.trainingjob import compute_trainingjob_status


@kopf.on.resume(GROUP, VERSION, "trainingjobs")
@kopf.on.create(GROUP, VERSION, "trainingjobs")
@kopf.on.update(GROUP, VERSION, "trainingjobs", field="spec")
def trainingjob_reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    run_reconcile("TrainingJob", TrainingJob, compute_trainingjob_status, body, patch, memo)
