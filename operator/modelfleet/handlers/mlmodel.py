"""MLModel handlers: create, spec update and operator restart all run the same level-based reconcile."""

from __future__ import annotations

from typing import Any

import kopf

from modelfleet.api.v1alpha1 import GROUP, VERSION, MLModel
from modelfleet.handlers.common import run_reconcile
from modelfleet.reconcilers.mlmodel import compute_mlmodel_status


@kopf.on.resume(GROUP, VERSION, "mlmodels")
@kopf.on.create(GROUP, VERSION, "mlmodels")
@kopf.on.update(GROUP, VERSION, "mlmodels", field="spec")
def mlmodel_reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    run_reconcile("MLModel", MLModel, compute_mlmodel_status, body, patch, memo)
