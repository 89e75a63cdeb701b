#!/usr/bin/env bash
# Set up a fresh Linux machine for the platform: system packages, a Python 3.11 venv, the pinned stack.
# Idempotent: re-running only installs what is missing. Used by `make setup` (and so by demo, test, CI).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}

# espeak-ng + sox: the local emotional TTS (data synthesis and the evaluation's speech-emotion judge; the reply
# voice is the model's own). g++ builds DeepSpeed's CPU op.
# prometheus brings promtool, which checks and unit-tests the alert rules; shellcheck lints every shell script.
missing=()
for bin in espeak-ng sox g++ shellcheck flite; do command -v "$bin" >/dev/null || missing+=("$bin"); done
command -v promtool >/dev/null || missing+=(prometheus)
command -v text2wave >/dev/null || missing+=(festival)  # flite and festival: more TTS engines and voices
# PostgreSQL and a Pushgateway: the registry tests run MLflow on a real PostgreSQL, the metrics tests push to a real
# Pushgateway (servers started by the tests themselves on loopback).
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v prometheus-pushgateway >/dev/null || missing+=(prometheus-pushgateway)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "installing system packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -q && "${sudo[@]}" apt-get install -y -q "${missing[@]}"
fi

command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (the bundled Triton python-backend stub is the 3.11 build)"'
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
stamp="$VENV/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first and pinned: an unpinned torch resolves to a multi-GB CUDA build.
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q -e '.[test,cluster]'
  # librosa's numba kernels, compiled and cached once here: parallel first compiles corrupt that cache.
  HF_HUB_OFFLINE=1 "$VENV/bin/python" -m components.librosa_cache
  # DeepSpeed's CPU op, compiled once here rather than by the first training run's ranks (~70 s).
  "$VENV/bin/python" -m components.training.ops
  rm -f "$VENV"/.installed-*; touch "$stamp"
fi
echo "environment ready: $VENV"
