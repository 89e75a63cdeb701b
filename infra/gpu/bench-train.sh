#!/usr/bin/env bash
# ZeRO-2 vs ZeRO-3 on one GPU for a 0.5B-class model (a Qwen2-0.5B-shaped LM, random init, bf16): samples/s,
# tokens/s, peak GPU memory and MFU, as `omni bench train` prints them. Run where a GPU is lent, from the project
# root with the package installed (`make setup`); CPU tests do not need it. Usage: infra/gpu/bench-train.sh [OUT]
set -euo pipefail
out="${1:-bench-gpu}"
steps="${STEPS:-20}"
here="$(cd "$(dirname "$0")" && pwd)"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
[ -f "$out/data/manifest.jsonl" ] || omni data synthesize --out "$out/data" --n 64
omni bench train --dataset "$out/data" --out "$out" --config "$here/qwen2-0.5b-bench.json" \
  --modes zero2,zero3 --nproc 1 --steps "$steps" --warmup 3
