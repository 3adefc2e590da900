"""Trainer failures. A TrainerError is the user's to fix (data, spec): exit code 2, which the Job's pod failure
policy treats as final. Anything else is unexpected: exit code 1, retried up to the Job's backoffLimit."""


class TrainerError(Exception):
    exit_code = 2
