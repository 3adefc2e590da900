"""`python -m modelfleet.trainer --output-dir DIR [--output-uri URI]`, with the training spec (TrainingJob
spec's framework, task, dataset and training, as JSON) in $MODELFLEET_TRAINING_SPEC or --spec-file.

On success the result JSON goes to the termination-message file (default /dev/termination-log) and exit is 0. On
failure a one-line reason goes there as {"error": ...} and to stderr; exit 2 for problems with the data or spec,
1 for anything unexpected."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from pydantic import ValidationError

from modelfleet.api.v1alpha1.trainingjob import TrainingJobSpec
from modelfleet.config import DEFAULT_ALLOWED_ESTIMATORS
from modelfleet.trainer.errors import TrainerError

MAX_MESSAGE = 4096


def write_message(path: Path, payload: dict[str, object]) -> None:
    text = json.dumps(payload, separators=(",", ":"))
    if len(text.encode()) > MAX_MESSAGE and "features" in payload:
        # Inferred features are a convenience copy of the artifact's metadata.json: dropped when too many to fit.
        text = json.dumps({k: v for k, v in payload.items() if k != "features"}, separators=(",", ":"))
    if len(text.encode()) > MAX_MESSAGE:  # the kubelet truncates at 4 KiB; keep the JSON parseable instead
        text = json.dumps({"error": str(payload.get("error", "result too large"))[: MAX_MESSAGE - 64]})
    try:
        path.write_text(text)
    except OSError as e:
        print(f"modelfleet-trainer: cannot write {path}: {e}", file=sys.stderr)


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:1000]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelfleet.trainer", description=__doc__)
    parser.add_argument("--output-dir", type=Path, required=True, help="where the artifact directory goes")
    parser.add_argument("--output-uri", default="", help="the artifact's URI, recorded in the result")
    parser.add_argument("--spec-file", type=Path, help="the training spec as JSON (default: $MODELFLEET_TRAINING_SPEC)")
    parser.add_argument(
        "--termination-log",
        type=Path,
        default=Path(os.environ.get("MODELFLEET_TERMINATION_LOG", "/dev/termination-log")),
    )
    parser.add_argument("--seed", type=int, default=int(os.environ.get("MODELFLEET_SEED", "0")))
    args = parser.parse_args(argv)
    allowed = (
        tuple(x for x in os.environ.get("MODELFLEET_ALLOWED_ESTIMATORS", "").split(",") if x)
        or DEFAULT_ALLOWED_ESTIMATORS
    )
    try:
        raw = args.spec_file.read_text() if args.spec_file else os.environ.get("MODELFLEET_TRAINING_SPEC", "")
        if not raw:
            raise TrainerError("no training spec: set MODELFLEET_TRAINING_SPEC or pass --spec-file")
        try:
            spec = TrainingJobSpec.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as e:
            raise TrainerError(f"invalid training spec: {one_line(e)}") from e
        from modelfleet.trainer.run import train

        result = train(
            spec,
            args.output_dir,
            args.output_uri or args.output_dir.as_uri(),
            seed=args.seed,
            allowed_estimators=allowed,
        )
    except TrainerError as e:
        reason = one_line(e)
        write_message(args.termination_log, {"error": reason, "reason": e.reason})
        print(f"modelfleet-trainer: error: {reason}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # unexpected: keep the traceback in the log, the reason in the message
        traceback.print_exc()
        reason = f"unexpected {type(e).__name__}: {one_line(e)}"
        write_message(args.termination_log, {"error": reason})
        print(f"modelfleet-trainer: error: {reason}", file=sys.stderr)
        return 1
    write_message(args.termination_log, result)
    print(
        f"modelfleet-trainer: done: {json.dumps(result['metrics'])} digest {result['artifactDigest']}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
