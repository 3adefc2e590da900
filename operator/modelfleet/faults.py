"""Crash points for fault-injection tests: MODELFLEET_CRASH_AT=<name> makes the process exit at once (no clean-up,
like a kill -9) when it reaches that point. Unset, this does nothing.

The points sit between two writes of one decision: after-trainingjob-create, after-job-create, after-record-create,
after-serving-apply (between the Deployment and the Service), after-status-patch (before its Events)."""

from __future__ import annotations

import os

CRASH_EXIT_CODE = 86


def crash_point(name: str) -> None:
    if os.environ.get("MODELFLEET_CRASH_AT") == name:
        os._exit(CRASH_EXIT_CODE)
