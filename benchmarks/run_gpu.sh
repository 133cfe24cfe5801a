#!/usr/bin/env bash
# Runs every benchmarks/*_bench.py on the accelerator within a total budget (default 8 minutes),
# writing JSON rows to $OUT (when set, e.g. on the lent GPU machine) or benchmarks/results/.
#
#   benchmarks/run_gpu.sh                 # --device gpu, full shapes
#   DEVICE=cpu TINY=1 benchmarks/run_gpu.sh   # tiny CPU smoke run of the same scripts
#   BENCHES="scion lion" benchmarks/run_gpu.sh # only these, in this order
#
# A script that fails or overruns is reported and the others still run; the exit status is
# non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
DEVICE=${DEVICE:-gpu}
BUDGET=${BENCH_BUDGET_S:-480}
OUT_DIR=${OUT:-benchmarks/results}
EXTRA=()
[ -n "${TINY:-}" ] && EXTRA+=(--tiny)
mkdir -p "$OUT_DIR"
start=$(date +%s)
status=0
if [ -n "${BENCHES:-}" ]; then
  LIST=()
  for b in $BENCHES; do LIST+=("benchmarks/${b}_bench.py"); done
else
  LIST=(benchmarks/*_bench.py)
fi
for bench in "${LIST[@]}"; do
  left=$((BUDGET - ($(date +%s) - start)))
  if [ "$left" -le 5 ]; then
    echo "run_gpu.sh: budget of ${BUDGET}s spent; skipped $bench" >&2
    status=1
    continue
  fi
  echo "== $bench (${left}s left)" >&2
  if ! timeout "$left" "$PY" "$bench" --device "$DEVICE" --out "$OUT_DIR" "${EXTRA[@]}"; then
    echo "run_gpu.sh: FAILED or timed out: $bench" >&2
    status=1
  fi
done
echo "run_gpu.sh: done in $(($(date +%s) - start))s; rows in $OUT_DIR" >&2
exit $status
