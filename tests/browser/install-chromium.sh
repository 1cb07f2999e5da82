#!/usr/bin/env bash
# Debian's chromium and its matching chromedriver for the results-page test (no browser can be
# downloaded here; apt can install them, as tests/cluster/start-slurm.sh installs slurm-wlm).
set -euo pipefail
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
chromium --version
