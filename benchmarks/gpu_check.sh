#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (install first: pip install -e ".[test,gpu]"): the real-GPU
# tests, the GPU benchmarks against their goals (large ensembles of the reference SDE, every layout including
# the tile layout, against diffrax on the same GPU when jax-cuda and diffrax are installed; Adam at paper scale
# with few long paths; a whole run through simulate(device="cuda") against the CPU) and the timing of a
# phase diagram's simulations on the device, in about 8 minutes. Everything goes to OUT (default
# ./gpu-check): gpu-tests.log, bench_cuda.json (with the goals), figure.log, and summary.json.
#
#   bash benchmarks/gpu_check.sh [OUT]
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-check}"
mkdir -p "$out"
export MPLBACKEND=Agg PYTHONUNBUFFERED=1
status=0

echo "== tests on the device (-m gpu)"
python -m pytest -m gpu -q -p no:cacheprovider 2>&1 | tee "$out/gpu-tests.log"
tests_rc=${PIPESTATUS[0]}
[ "$tests_rc" -eq 0 ] || status=1

echo "== benchmarks (bench_cuda.py)"
python benchmarks/bench_cuda.py --Ms 1024 65536 --steps 2000 --cpu-max-M 1024 --cpu-steps 2000 \
    --paper-Ms 1 8 --paper-steps 2000 --simulate-M 8 --simulate-steps 5000 --json "$out/bench_cuda.json" \
    2>&1 | tee "$out/bench_cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== a phase diagram's simulations on the device (diagsim figures --only fig4_phase --quick --device cuda)"
start=$(date +%s.%N)
diagsim figures --only fig4_phase --quick --device cuda --cache "$out/cache" --out "$out/figures" \
    --no-progress 2>&1 | tee "$out/figure.log"
figure_rc=${PIPESTATUS[0]}
[ "$figure_rc" -eq 0 ] || status=1
figure_s=$(python -c "import time; print(round(time.time() - $start, 1))")

python - "$out" "$tests_rc" "$figure_rc" "$figure_s" <<'PY'
import json, sys
out, tests_rc, figure_rc, figure_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
try:
    bench = json.load(open(f"{out}/bench_cuda.json"))
except (OSError, ValueError):
    bench = {}
summary = {"gpu_tests_passed": tests_rc == 0, "env": bench.get("env"), "goals": bench.get("goals"),
           "phase_diagram_quick_on_device_s": figure_s, "phase_diagram_ok": figure_rc == 0}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(summary, indent=1))
PY
exit $status
