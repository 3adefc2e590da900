"""DriftPolicy handlers: create, spec update and operator restart all run the same level-based reconcile."""

from __future__ import annotations

from typing import Any

import kopf

from modelfleet.api.v1alpha1 import GROUP, VERSION, DriftPolicy
from modelfleet.handlers.common import run_reconcile
from modelfleet.reconcilers.driftpolicy import compute_driftpolicy_status


def _reconcile(obj: DriftPolicy, generation: int | None, deps: Any, now: Any) -> Any:
    return compute_driftpolicy_status(obj, generation, deps.config, now)


@kopf.on.resume(GROUP, VERSION, "driftpolicies")
@kopf.on.create(GROUP, VERSION, "driftpolicies")
@kopf.on.update(GROUP, VERSION, "driftpolicies", field="spec")
def driftpolicy_reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    run_reconcile("DriftPolicy", DriftPolicy, _reconcile, body, patch, memo)
