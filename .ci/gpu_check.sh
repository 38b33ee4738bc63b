#!/usr/bin/env bash
# GPU check (issue 5): run on an NVIDIA H100/H200 lent machine (jax 0.11.2 + CUDA 13, no internet).
# Packages missing there travel as wheels in .whl/ (git-ignored). Prepare them here, once:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl gguf orjson llguidance pytest-asyncio jsonschema jsonschema-specifications referencing rpds-py
# then run this script with .whl carried. The default model's GGUF (98 MB) cannot travel, so the
# small-model throughput uses its shape with random weights (--load-format dummy --model smollm2-135m).
# Writes logs and JSON to ${OUT:-/tmp/gpu_check}. Budget: under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1 JAX_DEFAULT_MATMUL_PRECISION=highest
export CORTEXSTREAM_CACHE_DIR=/tmp/cortexstream-cache
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"

echo "== kernel tests, compiled for the GPU (no interpret) and golden logits on the GPU =="
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_golden.py 2>&1 | tail -15 \
  | tee "$OUT/tests.txt"

echo "== decode attention microbenchmark: Pallas vs reference =="
timeout 120 python3 -m kernels.paged_attention.bench --output-json "$OUT/kernel_bench.json" 2>&1 | tail -20 \
  | tee "$OUT/kernel_bench.txt"

unset JAX_DEFAULT_MATMUL_PRECISION
bench() {  # name, then bench throughput flags
  local name=$1; shift
  timeout 150 python3 -m gateway.cli bench throughput --load-format dummy --dtype bfloat16 --no-warmup \
    --output-json "$OUT/throughput_$name.json" "$@" 2>&1 | grep -v "Loading\|Compiling" | tail -5 \
    | tee "$OUT/throughput_$name.txt"
}
echo "== engine throughput, SmolLM2-135M shape, bf16 =="
bench smollm2 --model smollm2-135m --num-prompts 256 --input-len 128 --output-len 128 --max-num-seqs 128 \
  --max-model-len 1024 --max-num-batched-tokens 2048
echo "== engine throughput, Llama-3-8B shape, bf16 =="
bench llama3_8b --model llama-3-8b --num-prompts 128 --input-len 128 --output-len 128 --max-num-seqs 64 \
  --max-model-len 1024 --max-num-batched-tokens 2048
