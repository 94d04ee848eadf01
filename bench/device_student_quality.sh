#!/usr/bin/env bash
# The quality benchmark (bench/student_quality.py) on a lent GPU machine: training on CUDA (bf16
# autocast), exports and CPU timings on that machine's CPU (1 thread, as here).
#
#   python bench/device_bundle.py pack          # here: fills .gpu/ (git-ignored, < 64 MiB)
#   device run, carry [".gpu"]:  bash bench/device_student_quality.sh
#
# One dataset per invocation of the benchmark (bbc_news first: the smaller), each merged into one
# results file; the log and results are written under $OUT as each dataset finishes, so a cut-off
# run still returns what finished. Extra arguments go to student_quality.py.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT/results"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export AUTODISTILLER_CACHE=/tmp/adcache MINILM_FP32_DIR=/tmp/minilm
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
python3 bench/device_bundle.py restore --site /tmp/site --model "$MINILM_FP32_DIR" || exit 1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  lscpu | grep -E "Model name|^CPU\(s\)"
  python3 -c "import sys, torch, transformers, onnxruntime, pydantic; print(sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, 'onnxruntime', onnxruntime.__version__, 'pydantic', pydantic.__version__)"
} 2>&1 | tee "$OUT/machine.txt"
rc=0
for ds in ${DATASETS:-bbc_news rotten_tomatoes}; do
  python3 bench/student_quality.py --datasets "$ds" --recommendations .gpu/recommendations.json \
    --device cuda --work /tmp/sq --out "$OUT/results" "$@" 2>&1 | grep -v "Loading weights" | tee -a "$OUT/log.txt"
  rc=$((rc || PIPESTATUS[0]))
done
exit $rc
