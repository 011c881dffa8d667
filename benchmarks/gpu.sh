#!/usr/bin/env bash
# The prepared first GPU run, for a 15-minute device budget (1-3 min of it the machine's start):
# about 7 minutes, each step with its own end.
#
#   benchmarks/gpu.sh OUT_DIR
#
# Needs a CUDA GPU and python3 with torch, triton, pytest, pytest-benchmark and matplotlib; no
# network. Steps, in order of what a run must not miss:
#   preflight (~20 s)    nvidia-smi, versions, imports       -> env.txt
#   warm (<= 100 s)      the Triton cache, one process per dtype, in parallel
#   correctness (<= 90 s) benchmarks/gpu_check.py: B = 65,536 against float64, poisoned outputs,
#                        bit-identical reruns, all-padded rows -> correctness.jsonl; a failure
#                        skips the timings
#   headline (<= 150 s)  paper-shape block fwd and fwd+bwd, bf16 and fp32, batch 32,768 / 65,536 /
#                        262,144: triton, triton_r128 (bf16 fwd+bwd), eager, compile, sdpa
#                        -> kernels_headline.json
#   models (<= 60 s)     one training step and inference of every model at batch 65,536
#   render               bench.md, bench.png, the short table
# Each step ends by a fixed second of the run (CHECKPOINTS below). Benchmark cases past their
# step's end skip (APEM_BENCH_DEADLINE), so pytest still writes its JSON; a step still running
# GRACE seconds later gets SIGINT (pytest stops and writes what it has) and then SIGKILL.
set -u
out=${1:?usage: benchmarks/gpu.sh OUT_DIR}
mkdir -p "$out" && out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
start=$(date +%s)
GRACE=15

export TRITON_INTERPRET=0 # compiled kernels (tests/conftest.py only sets a default of 1)
export PYTHONUNBUFFERED=1
export APEM_BENCH_ROUNDS=${APEM_BENCH_ROUNDS:-5}
export APEM_BENCH_ROUND_SECONDS=${APEM_BENCH_ROUND_SECONDS:-0.02}

# step NAME END_SECOND COMMAND...: run COMMAND until END_SECOND of the run, output in NAME.log.
step() {
  local name=$1 end=$(($2 + start)) now limit
  shift 2
  now=$(date +%s)
  limit=$((end > now ? end - now + GRACE : GRACE))
  echo "== $name: $((now - start)) s into the run, until $((end - start)) s"
  APEM_BENCH_DEADLINE=$end timeout --signal=INT --kill-after=10 $limit "$@" >"$out/$name.log" 2>&1
  echo "   exit $?: $(tail -n 1 "$out/$name.log")"
}

{
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  "$py" -c 'import sys, torch, triton; print(sys.version); print("torch", torch.__version__,
"cuda", torch.version.cuda, "triton", triton.__version__, "GPU", torch.cuda.is_available())'
  git log -1 --format='commit %H %s' 2>/dev/null
} >"$out/env.txt" 2>&1
cat "$out/env.txt"

"$py" -c 'import torch' || { echo "$py cannot import torch; set PYTHON=..." && exit 1; }
"$py" -c 'import torch; torch.cuda.is_available() or print("WARNING: no CUDA device: CPU rows only")'
installed='import apem, sys; sys.exit(not apem.__file__.startswith(sys.argv[1]))'
if ! "$py" -c "$installed" "$PWD" 2>/dev/null &&
  ! "$py" -m pip install -e . --no-deps --no-build-isolation -q >"$out/install.log" 2>&1; then
  echo "pip install -e . failed (see install.log); using PYTHONPATH"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

bench() { # bench NAME END_SECOND PYTEST_ARGS...: one benchmark step writing NAME.json
  local name=$1 end=$2
  shift 2
  step "$name" "$end" "$py" -m pytest -q -p no:cacheprovider --benchmark-json="$out/$name.json" \
    --benchmark-columns=median,rounds,iterations "$@"
}

step warm 120 bash -c 'for dt in bf16 fp16 fp32; do "$0" -m benchmarks.gpu_check --warm $dt & done;
wait' "$py"
step correctness 210 "$py" -m benchmarks.gpu_check "$out"
if [ "$(grep -c '"ok": false' "$out/correctness.jsonl" 2>/dev/null)" != 0 ]; then
  echo "correctness failed (see correctness.jsonl and correctness.log): no timings"
  exit 1
fi
bench kernels_headline 360 benchmarks/test_bench_kernels.py \
  -k "block and paper and (32768 or 65536 or 262144) and (triton or eager or compile or sdpa)"
bench models 420 benchmarks/test_bench_models.py -k "65536"

echo "== render: $(($(date +%s) - start)) s into the run"
timeout 30 "$py" -m benchmarks.render "$out"/*.json --out "$out" \
  >"$out/short.txt" 2>"$out/render.log" || echo "render failed: $(tail -n 3 "$out/render.log")"
echo "== done in $(($(date +%s) - start)) s; correctness: $(grep -c '"ok": true' "$out/correctness.jsonl") ok"
cat "$out/short.txt"
