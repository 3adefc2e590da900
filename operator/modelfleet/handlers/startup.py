"""Operator start-up: Kopf settings (the metrics endpoint and every fatal check come before Kopf starts: see
operator_main)."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from modelfleet.api.v1alpha1 import GROUP


@kopf.on.startup()
def operator_configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any
) -> None:
    # Kopf's bookkeeping lives in annotations under our prefix: status schemas stay strict (nothing under status.kopf).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Handler log lines are not turned into Events; decisions are posted as Events explicitly.
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 8
    if memo.get("metrics_port"):  # bound before Kopf started (operator_main), so a taken port exits at once
        logger.info("metrics on :%s/metrics", memo["metrics_port"])
