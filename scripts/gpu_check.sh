#!/usr/bin/env bash
# The GPU run of hrnet-teach: everything that needs CUDA, in one go, on a CUDA machine (cut to fit one
# 8-minute call; not yet timed in this form). First it checks that every module it needs imports (it installs nothing), and its
# first line records the GPU: compute capability, cuDNN, bfloat16 hardware, CPU count.
#   1. the deploy bench on the GPU (eager, fast, fast under autocast: bf16 from Ampere on, fp16 below,
#      ONNX Runtime's CUDA provider if onnxruntime-gpu is installed), torch.compile on W18-small-v2
#      alone (it takes half a minute a model), then the variant bench
#   1b. a learner's answers on the GPU, through every exercise check (scripts/gpu_exercises_check.py)
#   course  the English lessons with a GPU code path (00, 07, 10: the others run the same CPU code on
#           a GPU machine), with the GPU selected (bench --course); the Chinese ones only with
#           GPU_CHECK_ZH=gpu (the same three) or all
#   2. the CUDA-marked tests (pytest -m cuda)
#   3. one training epoch with --amp (and --export), then with --amp --channels-last; the checkpoint
#      and export load with a plain torch.load with CUDA hidden, as on a machine without a GPU
#   4. torchrun with one process (NCCL, DDP, SyncBatchNorm layers)
#   5. the fast test suite with CUDA visible (pytest -m "not slow and not browser and not cuda":
#      step 2 ran the cuda ones)
# The timed benches run first, alone on the machine; then the course runs in the background
# beside steps 2-5, which check results, not speed (so the course's own GPU timings, in course.log,
# are not clean: quote the bench's).
# A failing step does not stop the others: each has a time limit (seconds, below; scale them all
# with GPU_CHECK_SCALE=2 on a slower GPU), the summary at the end lists every step, and the exit
# status is 1 when any step failed. Logs and JSON results go to OUT_DIR (at most 8 files), and
# summary.txt grows as each step ends, so a run cut short keeps what it finished.
# Usage: bash scripts/gpu_check.sh [OUT_DIR]   (default: runs/gpu_check in the repository)
# Without CUDA it refuses and exits 2.
set -uo pipefail
SCALE="${GPU_CHECK_SCALE:-1}"
ZH="${GPU_CHECK_ZH:-none}"
if ! [[ "$SCALE" =~ ^[1-9][0-9]*$ ]] || ! [[ "$ZH" =~ ^(gpu|all|none)$ ]]; then
    echo "gpu_check.sh: GPU_CHECK_SCALE must be a whole number from 1 (got '$SCALE') and GPU_CHECK_ZH" \
         "gpu, all or none (got '$ZH')" >&2
    exit 2
fi
# out_dir, not OUT: an OUT already in the environment (some machines export one) must not redirect the results
out_dir=""
[ -n "${1:-}" ] && { mkdir -p "$1" && out_dir="$(cd "$1" && pwd)" || exit 2; }  # before the cd: relative to where you are
cd "$(dirname "$0")/.."
out_dir="${out_dir:-$PWD/runs/gpu_check}"
PY="${PYTHON:-python}"

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check.sh: no CUDA GPU is visible to PyTorch here (torch.cuda.is_available() is False)." >&2
    echo "Run it on a machine with an NVIDIA GPU and a CUDA build of torch (e.g. Colab with a GPU runtime);" >&2
    echo "on a CPU the normal test command covers everything else: python -m pytest" >&2
    exit 2
fi
# Every module a step imports, and pytest's timeout plugin (step 5's --timeout): without one a step
# would fail as if the GPU had, so refuse at once, in one line (the lent machines have no network).
missing="$("$PY" - <<'PY' 2>/dev/null
import importlib.util
needed = {"pytest": "pytest", "pytest_timeout": "pytest-timeout", "nbclient": "nbclient", "nbformat": "nbformat",
          "ipykernel": "ipykernel", "onnx": "onnx", "onnxscript": "onnxscript", "onnxruntime": "onnxruntime",
          "tqdm": "tqdm", "matplotlib": "matplotlib", "yaml": "pyyaml", "safetensors": "safetensors",
          "torchinfo": "torchinfo", "PIL": "pillow", "huggingface_hub": "huggingface_hub",
          "ipywidgets": "ipywidgets", "graphviz": "graphviz"}
gone = [pip for name, pip in needed.items() if importlib.util.find_spec(name) is None]
print(" ".join(gone))
PY
)"
if [ -n "$missing" ]; then
    echo "gpu_check.sh: missing: $missing (pip install $missing)" >&2
    exit 2
fi
mkdir -p "$out_dir"
WORK="$(mktemp -d)"   # checkpoints: not results, and too many files for OUT
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
: > "$out_dir/summary.txt"; : > "$out_dir/steps.log"; : > "$out_dir/course.log"   # a rerun starts them afresh
"$PY" -c "import sys, torch
c = torch.cuda
try:
    bf16 = c.is_bf16_supported(including_emulation=False)
except TypeError:  # a torch older than the argument
    bf16 = c.get_device_capability(0) >= (8, 0)
print('GPU:', c.get_device_name(0), '| capability', '%d.%d' % c.get_device_capability(0), '| torch', torch.__version__,
      '| CUDA', torch.version.cuda, '| cuDNN', torch.backends.cudnn.version(), '| bf16 hardware', bf16,
      '| nproc', sys.argv[1])" "$(nproc)" | tee -a "$out_dir/summary.txt"

# step NAME LIMIT_S COMMAND...: runs COMMAND under a time limit, its output into steps.log,
# and one line into summary.txt: ok / FAILED (exit status) / TIMED OUT, and the seconds it took.
# With SHOW=1 the step's output (less progress bars) goes into the summary too.
step() {
    local name="$1" limit=$(( $2 * SCALE )) started=$SECONDS status before
    shift 2
    echo "== $name (limit ${limit} s)" | tee -a "$out_dir/steps.log"
    before=$(wc -l < "$out_dir/steps.log")
    timeout --kill-after=10 "$limit" "$@" >> "$out_dir/steps.log" 2>&1
    status=$?
    local took=$(( SECONDS - started )) verdict
    verdict="$(verdict "$status")"
    printf '%-34s %-18s %5d s\n' "$name" "$verdict" "$took" | tee -a "$out_dir/summary.txt"
    [ "${SHOW:-0}" = 1 ] && tail -n +"$(( before + 1 ))" "$out_dir/steps.log" | tr '\r' '\n' \
        | grep -vE '%\||^\s*$' >> "$out_dir/summary.txt"
    [ "$verdict" = ok ]
}

verdict() {  # an exit status in words
    case "$1" in 0) echo ok ;; 124|137) echo "TIMED OUT" ;; *) echo "FAILED (exit $1)" ;; esac
}

course() {  # English, then Chinese (see ZH): one JSON each, and one line each in the summary
    local lang folder lessons started status limit=$(( 420 * SCALE ))
    for lang in en zh; do
        folder=notebooks lessons=()
        if [ "$lang" = zh ]; then
            [ "$ZH" = none ] && continue
            folder=notebooks/zh
            [ "$ZH" = gpu ] && lessons=(--lessons 00,07,10)
        else
            lessons=(--lessons 00,07,10)
        fi
        started=$SECONDS
        timeout --kill-after=10 "$limit" "$PY" -m hrnet_teach.bench --course --notebooks "$folder" "${lessons[@]}" \
            --no-progress --json "$out_dir/course_$lang.json" >> "$out_dir/course.log" 2>&1
        status=$?
        printf '%-34s %-18s %5d s\n' "course ($lang)" "$(verdict $status)" $(( SECONDS - started )) \
            | tee -a "$out_dir/summary.txt" >> "$WORK/course_summary.txt"
    done
}

failed=0
SHOW=1 step "1. bench --deploy on cuda" 150 "$PY" -m hrnet_teach.bench --deploy --device cuda --repeats 20 \
    --no-compile --json "$out_dir/deploy.json" || failed=1
SHOW=1 step "1. ... torch.compile, W18-small-v2" 150 "$PY" -m hrnet_teach.bench --deploy --device cuda --repeats 20 \
    --variants w18_small_v2 --json "$out_dir/deploy_compile.json" || failed=1
SHOW=1 step "1. bench on cuda, 512x1024" 120 "$PY" -m hrnet_teach.bench --device cuda --variants w18_small_v2,w48 \
    --sizes 512x1024 --json "$out_dir/bench.json" || failed=1
# alone on the GPU too: it times each check against the 5 s limit, the session's first CUDA call included
step "1. learner answers on cuda" 180 "$PY" scripts/gpu_exercises_check.py || failed=1

course & course_pid=$!
step "2. pytest -m cuda" 120 "$PY" -m pytest -m cuda -q -p no:cacheprovider || failed=1
step "3. train --amp" 120 "$PY" -m hrnet_teach.train --epochs 1 --device cuda --amp --no-channels-last \
    --quiet --out "$WORK/train_amp" --export "$WORK/train_amp/export.pt" || failed=1
# a Colab-trained file read on a laptop without CUDA: plain torch.load, no map_location
step "3. ... both load without CUDA" 60 env CUDA_VISIBLE_DEVICES= "$PY" -c "import sys, torch
assert not torch.cuda.is_available(), 'CUDA still visible'
for path in sys.argv[1:]:
    state = torch.load(path, weights_only=True)['model']
    assert all(t.device.type == 'cpu' for t in state.values()), path" \
    "$WORK/train_amp/checkpoint.pt" "$WORK/train_amp/export.pt" || failed=1
step "3. train --amp --channels-last" 120 "$PY" -m hrnet_teach.train --epochs 1 --device cuda --amp \
    --channels-last --quiet --out "$WORK/train_amp_nhwc" || failed=1
# torchrun with one process joins a group of one: NCCL, DDP and SyncBatchNorm layers, as on several
# GPUs (only SyncBatchNorm's exchange is skipped: torch computes plain BatchNorm for one process)
step "4. torchrun NCCL SyncBatchNorm" 180 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 \
    -m hrnet_teach.train --epochs 1 --device cuda --quiet --out "$WORK/ddp" || failed=1
step "4. ... and it ran on NCCL" 5 grep -q '"backend": "nccl"' "$WORK/ddp/metrics.json" || failed=1
# Less the checks of the source itself that need the dev tools (ruff, the catalogue's babel):
# they say nothing about the GPU.
step "5. pytest -m 'not slow', CUDA seen" 300 "$PY" -m pytest -m "not slow and not browser and not cuda" -q \
    -p no:cacheprovider \
    --timeout 120 --ignore tests/test_lint.py \
    -k "not (mo_is_current or every_message_translated or every_marked_message)" || failed=1
for run in train_amp train_amp_nhwc ddp; do  # each run's score and epoch time, for the record
    [ -f "$WORK/$run/metrics.json" ] && "$PY" -c "import json, sys; m = json.load(open(sys.argv[1])); s = m['settings']
print(f\"{sys.argv[2]:<15} held-out mIoU {m['final_miou']:.3f}, seconds per epoch {m['elapsed_s']}, amp {s['amp']}, \"
      f\"channels_last {s['channels_last']}, backend {s['backend']}\")" "$WORK/$run/metrics.json" "$run" \
        | tee -a "$out_dir/steps.log" >> "$out_dir/summary.txt"
done

wait "$course_pid"
grep -qvE ' ok +[0-9]+ s$' "$WORK/course_summary.txt" 2>/dev/null && failed=1
echo "gpu_check.sh: done; results in $out_dir (summary.txt, steps.log, course.log, *.json)"
cat "$out_dir/summary.txt"
exit "$failed"
