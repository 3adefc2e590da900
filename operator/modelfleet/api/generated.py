"""Writing generated files, or (with --check) showing how the committed ones differ: shared by the generators."""

from __future__ import annotations

import difflib
import sys
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
