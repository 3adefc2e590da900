"""What the gateway adds: the same one-row logistic-regression request (bench/serving's), closed loop c=1, straight
to ModelFleet's model server and through the gateway in front of it (bench/gateway/static.py: the real proxy with a
fixed routing table), alternating in rounds within one run so both see the same machine. Prints each round's p50 and
p99 both ways and the p50 added; target: <= 0.3 ms added at p50.

    .venv/bin/python -m bench.gateway.run [--seconds 4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.serving.load import closed_loop
from bench.serving.run import BODY, train_ours, wait_ready
from modelfleet.devcluster.processes import free_port


def start(args: list[str], ready_url: str, what: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(ready_url, proc, what)
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelfleet-gateway-bench-"))
    artifact = train_ours(work, "lr")
    server_port, gateway_port = free_port(), free_port()
    server = start(
        [
            *("modelfleet.server", "--artifact", str(artifact), "--model-name", "iris", "--host", "127.0.0.1"),
            *("--port", str(server_port), "--grpc-port", "0"),
        ],
        f"http://127.0.0.1:{server_port}/v2/health/ready",
        "the model server",
    )
    gateway = start(
        [
            *("bench.gateway.static", "--port", str(gateway_port), "--model", "iris"),
            *("--endpoint", f"127.0.0.1:{server_port}"),
        ],
        f"http://127.0.0.1:{gateway_port}/healthz",
        "the gateway",
    )
    direct_url = f"http://127.0.0.1:{server_port}/v2/models/iris/infer"
    gateway_url = f"http://127.0.0.1:{gateway_port}/v2/models/iris/infer"
    c = args.concurrency
    try:

        async def go() -> list[tuple[float, float, float, float, int]]:
            await closed_loop(direct_url, BODY, 4, 1.0)
            await closed_loop(gateway_url, BODY, 4, 1.0)
            rows = []
            for _ in range(args.rounds):
                direct = await closed_loop(direct_url, BODY, c, args.seconds)
                proxied = await closed_loop(gateway_url, BODY, c, args.seconds)
                errors = direct.errors + proxied.errors
                rows.append((direct.pct(50), direct.pct(99), proxied.pct(50), proxied.pct(99), errors))
            return rows

        rows = asyncio.run(go())
    finally:
        for proc in (gateway, server):
            proc.terminate()
            proc.wait(30)
    print(f"\nThe gateway in front of the LR model server, closed loop c={c}, {args.seconds:g} s each way per round")
    print(
        f"{'round':>5} {'direct p50':>10} {'p99':>6} | {'gateway p50':>11} {'p99':>6} | {'added p50 ms':>12} {'err':>4}"
    )
    added = []
    for i, (d50, d99, g50, g99, errors) in enumerate(rows, 1):
        added.append(g50 - d50)
        print(f"{i:>5} {d50:>10.3f} {d99:>6.2f} | {g50:>11.3f} {g99:>6.2f} | {g50 - d50:>12.3f} {errors:>4}")
    print(
        f"added p50: median {statistics.median(added):.3f} ms, {min(added):.3f}-{max(added):.3f} over {len(added)} "
        "rounds (target <= 0.3 ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
