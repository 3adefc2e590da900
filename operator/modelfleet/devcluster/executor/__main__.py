"""`python -m modelfleet.devcluster.executor`: run the local executor node (started by `modelfleet dev-cluster up`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from modelfleet.devcluster.executor.executor import Executor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node-name", default="modelfleet-executor")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--ca-file", type=Path, required=True)
    parser.add_argument("--gpus", type=int, default=0, help="GPUs to advertise (the work still runs on the CPU)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    Executor(args.kubeconfig, args.node_name, args.state_dir, args.gpus, args.ca_file).run()


if __name__ == "__main__":
    main()
