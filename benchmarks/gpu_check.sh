#!/usr/bin/env bash
# GPU check: what TensorFlow sees, then curated against raw FER-2013 with the full cnn over 3 seeds
# (`python -m fer_core compare`: one experiment, 95 % intervals), then one table per run: accuracy,
# leak-free accuracy, images/s, device.
#
#   benchmarks/gpu_check.sh [DATA] [OUT]          # one modern GPU
#   GPU_CHECK_TINY=1 benchmarks/gpu_check.sh DATA # tiny size, 1 epoch, 2 seeds: tests the script on a CPU
#   GPU_CHECK_GRID=1 ...                          # also a fast run of every model family (curated)
#
# DATA defaults to ../shared/fer2013; OUT to $OUT when set (the device machine's folder that comes
# back), else a new temporary folder. The curated arm is a workspace whose edit log drops every
# Training copy of a test image. Runs share the one GPU (TensorFlow grows its memory instead of taking
# it all), GPU_CHECK_PARALLEL (default 3) at a time; in tiny mode one at a time.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$here/../shared/fer2013}"
out="${2:-${OUT:-$(mktemp -d /tmp/gpu_check.XXXXXX)}}"
python="${PYTHON:-python}"
models="cnn cnn_lstm vit cnn_attention xception"
export TF_FORCE_GPU_ALLOW_GROWTH=true TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"

if [[ "${GPU_CHECK_TINY:-0}" == 1 ]]; then
    compare=(--size tiny --epochs 1 --seeds 2)
    fast=(--size tiny --epochs 1 --limit 700 --batch-size 64)
    export FER_AUDIT_MAX_RUNS=1
else
    compare=(--size full --seeds "${GPU_CHECK_SEEDS:-3}" ${GPU_CHECK_FULL_EPOCHS:+--epochs "$GPU_CHECK_FULL_EPOCHS"})
    fast=(--size fast)
    export FER_AUDIT_MAX_RUNS="${GPU_CHECK_PARALLEL:-3}"
fi
workspace="$out/workspace"
mkdir -p "$out"
echo "gpu_check: data $data, out $out, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
    || echo "no nvidia-smi"
TF_CPP_MIN_LOG_LEVEL=3 "$python" - <<'EOF'
import tensorflow as tf

from fer_core.training.device import probe_training_device

print(f"TensorFlow {tf.__version__}, built with CUDA: {tf.test.is_built_with_cuda()}; "
      f"GPUs: {[gpu.name for gpu in tf.config.list_physical_devices('GPU')] or 'none'}")
print(f"a run will record device: {probe_training_device()}")
EOF

"$python" -m fer_core edit resolve-leaks "$data" --workspace "$workspace" > "$out/resolve_leaks.log"

started=$(date +%s)
if [[ "${GPU_CHECK_GRID:-0}" == 1 ]]; then
    for model in $models; do
        "$python" -m fer_core train "$data" --workspace "$workspace" --out "$out/fast_$model" --model "$model" \
            --sampling none "${fast[@]}" > "$out/fast_$model.log" 2>&1 || echo "run fast_$model failed: $(tail -n 1 "$out/fast_$model.log")" &
    done
fi
"$python" -m fer_core compare "$data" --model cnn --sampling none "${compare[@]}" --wait --workspace "$workspace" \
    --out "$out/compare" 2>&1 | tee "$out/compare.log" || echo "compare failed: see $out/compare.log"
wait
echo "all runs: $(( $(date +%s) - started )) s wall"

"$python" - "$out" "$workspace" <<'EOF'
import json, sys
from pathlib import Path

out, workspace = Path(sys.argv[1]), Path(sys.argv[2])
runs = sorted((workspace / "runs").glob("*/metrics.json"),
              key=lambda path: (not json.loads(path.read_text())["raw"], json.loads(path.read_text())["seed"]))
paths = runs + sorted(out.glob("fast_*/metrics.json"))
print("| run | data | seed | epochs (best) | accuracy | leak-free accuracy | leaked left out | images/s | minutes | device |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
for path in paths:
    m = json.loads(path.read_text())
    leak_free = "n/a" if m["leak_free_accuracy"] is None else f"{m['leak_free_accuracy']:.4f}"
    print(f"| {path.parent.name} ({m['model']} {m['size']}) | {'raw' if m['raw'] else 'curated'} | {m['seed']} | "
          f"{m['epochs_run']} ({m['best_epoch']}) | {m['accuracy']:.4f} | {leak_free} | {m['leaked_test_images']} | "
          f"{m['images_per_second']:.0f} | {m['seconds'] / 60:.1f} | {m['device']} ({m['precision']}) |")
EOF
