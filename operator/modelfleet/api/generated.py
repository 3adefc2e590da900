"""Writing generated files, or (with --check) showing how the committed ones differ: shared by the generators."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from pathlib import Path


def write_or_check(path: Path, text: str, check: bool) -> bool:
    """Writes `text` to `path`; with `check`, writes nothing and prints a diff. True when the file differed."""
    current = path.read_text() if path.exists() else ""
    if current == text:
        return False
    if check:
        sys.stdout.writelines(
            difflib.unified_diff(current.splitlines(True), text.splitlines(True), str(path), f"{path} (generated)")
        )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return True


def generator_main(argv: list[str] | None, description: str, render: Callable[[], dict[Path, str]], stale: str) -> int:
    """The command line every generator shares: write the files, or with --check exit 1 (printing `stale`) when any
    committed copy differs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository root")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on any difference")
    args = parser.parse_args(argv)
    differs = [rel for rel, text in render().items() if write_or_check(args.root / rel, text, args.check)]
    if differs and args.check:
        print(stale, file=sys.stderr)
        return 1
    return 0
