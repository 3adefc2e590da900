#!/usr/bin/env bash
# Prometheus and promtool for the drift tests and the demo, from Debian's `prometheus` package.
# Idempotent: does nothing when both are on PATH. Needs root (or sudo) the first time on a fresh machine.
set -euo pipefail

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "prometheus and promtool are needed and this is not a Debian-based machine: install Prometheus 2.x" \
    "so that both are on PATH" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "installing prometheus needs root or sudo" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing Debian's prometheus package (prometheus, promtool)" >&2
# A fresh machine may have no package lists yet: update only when the first try fails.
$sudo apt-get install -y -q --no-install-recommends prometheus >/dev/null \
  || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
# The package may start a system service on machines with systemd; tests and the demo run their own instances on
# free ports, so it does no harm, and it is left as the package manager set it up.
command -v prometheus >/dev/null && command -v promtool >/dev/null
