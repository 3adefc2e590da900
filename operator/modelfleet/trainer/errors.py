"""Trainer failures. A TrainerError is the user's to fix (data, spec): exit code 2, which the Job's pod failure
policy treats as final. Anything else is unexpected: exit code 1, retried up to the Job's backoffLimit."""

from __future__ import annotations

ARTIFACT_UNAVAILABLE = "ArtifactUnavailable"
"""The reason a run fails with when the artifact store refuses it (missing bucket, refused credentials)."""


class TrainerError(Exception):
    exit_code = 2
    reason = "TrainingError"
    """The TrainingJob's Failed condition's reason (a CamelCase word, like every condition reason)."""


class ArtifactStoreError(TrainerError):
    """The artifact (or dataset) store refused: permanent ones (missing bucket, refused credentials) fail the run at
    once; an unreachable endpoint exits 1 so the Job's backoffLimit retries it."""

    reason = ARTIFACT_UNAVAILABLE

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.exit_code = 2 if permanent else 1
