"""`python -m modelfleet` runs the command-line interface."""

from modelfleet.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
