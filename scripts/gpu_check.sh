#!/usr/bin/env bash
# The GPU run of hrnet-teach: everything that needs CUDA, in one go, on a CUDA machine.
#   1. the CUDA-marked tests (pytest -m cuda)
#   2. every lesson notebook, executed with the GPU selected
#   3. one training epoch with --amp, and with --amp --channels-last
#   4. torchrun (NCCL, SyncBatchNorm), world size 1
#   5. the deploy bench on the GPU (eager, fast, compile, AMP/bf16, ONNX Runtime's CUDA provider if present)
# Usage: bash scripts/gpu_check.sh [OUT_DIR]   (default: runs/gpu_check)
# Without CUDA it refuses and exits 2.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/gpu_check}"
PY="${PYTHON:-python}"

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check.sh: no CUDA GPU is visible to PyTorch here (torch.cuda.is_available() is False)." >&2
    echo "Run it on a machine with an NVIDIA GPU and a CUDA build of torch (e.g. Colab with a GPU runtime);" >&2
    echo "on a CPU the normal test command covers everything else: python -m pytest" >&2
    exit 2
fi
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)" | tee "$OUT/gpu.txt"

echo "== 1. CUDA-marked tests"
"$PY" -m pytest -m cuda -q -p no:cacheprovider | tee "$OUT/tests_cuda.txt"

echo "== 2. every lesson (they pick the GPU when CUDA is available)"
"$PY" -m hrnet_teach.bench --course --json "$OUT/course.json" | tee "$OUT/course.txt"

echo "== 3. training: 1 epoch with --amp, then with --amp and channels-last"
"$PY" -m hrnet_teach.train --epochs 1 --device cuda --amp --no-channels-last --quiet --out "$OUT/train_amp" | tail -3
"$PY" -m hrnet_teach.train --epochs 1 --device cuda --amp --channels-last --quiet --out "$OUT/train_amp_nhwc" | tail -3

echo "== 4. torchrun, NCCL, SyncBatchNorm, world size 1"
torchrun --standalone --nproc_per_node 1 -m hrnet_teach.train --epochs 1 --device cuda --out "$OUT/ddp" | tail -3

echo "== 5. the deploy bench on the GPU (eager, fast, compile, fast under bf16 autocast, ONNX Runtime CUDA if present)"
"$PY" -m hrnet_teach.bench --deploy --device cuda --repeats 20 --json "$OUT/deploy.json" | tee "$OUT/deploy.txt"
"$PY" -m hrnet_teach.bench --device cuda --variants w18_small_v2,w48 --sizes 512x1024 --json "$OUT/bench.json" | tee "$OUT/bench.txt"
echo "gpu_check.sh: done; results in $OUT"
