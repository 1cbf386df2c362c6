#!/usr/bin/env bash
# GPU check: the full cnn trained to convergence on raw and on curated FER-2013 (leaks removed), plus a
# fast grid (every model family at size fast), then one table: accuracy, leak-free accuracy, images/s, device.
#
#   benchmarks/gpu_check.sh [DATA] [OUT]          # one modern GPU: about 8 minutes
#   GPU_CHECK_TINY=1 benchmarks/gpu_check.sh      # tiny sizes, 1 epoch, a 700-image subset: tests the script on a CPU
#
# DATA defaults to ../shared/fer2013, OUT to a new temporary folder. The two full runs and the grid run
# side by side on the one GPU (TensorFlow grows its memory instead of taking it all); in tiny mode they
# run one after another. Every run is the ordinary `python -m fer_core train` command.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$here/../shared/fer2013}"
out="${2:-$(mktemp -d /tmp/gpu_check.XXXXXX)}"
python="${PYTHON:-python}"
models="cnn cnn_lstm vit cnn_attention xception"
export TF_FORCE_GPU_ALLOW_GROWTH=true TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"

if [[ "${GPU_CHECK_TINY:-0}" == 1 ]]; then
    full=(--size tiny --epochs 1 --limit 700 --batch-size 64)
    fast=(--size tiny --epochs 1 --limit 700 --batch-size 64)
    parallel=0
else
    full=(--size full --epochs "${GPU_CHECK_FULL_EPOCHS:-40}" --patience 10)
    fast=(--size fast)
    parallel=1
fi
mkdir -p "$out"
echo "gpu_check: data $data, out $out, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no nvidia-smi"

# Curated = a workspace whose edit log drops every Training copy of a test image.
"$python" -m fer_core edit resolve-leaks "$data" --workspace "$out/ws_curated" > "$out/resolve_leaks.log"

started=$(date +%s)
run() {  # run NAME WORKSPACE ARGS...: one training run, its output in NAME.log
    local name="$1" workspace="$2"
    shift 2
    "$python" -m fer_core train "$data" --workspace "$workspace" --out "$out/$name" "$@" > "$out/$name.log" 2>&1 \
        || echo "run $name failed: $(tail -n 1 "$out/$name.log")"
}
grid() {
    for model in $models; do run "fast_$model" "$out/ws_curated" --model "$model" --sampling none "${fast[@]}"; done
}
if [[ "$parallel" == 1 ]]; then
    run full_cnn_raw "$out/ws_raw" --model cnn --sampling none --raw "${full[@]}" &
    run full_cnn_curated "$out/ws_curated" --model cnn --sampling none "${full[@]}" &
    grid &
    wait
else
    run full_cnn_raw "$out/ws_raw" --model cnn --sampling none --raw "${full[@]}"
    run full_cnn_curated "$out/ws_curated" --model cnn --sampling none "${full[@]}"
    grid
fi
echo "all runs: $(( $(date +%s) - started )) s wall"

"$python" - "$out" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
names = ["full_cnn_raw", "full_cnn_curated"] + sorted(p.name for p in out.glob("fast_*") if p.is_dir())
print("| run | data | epochs (best) | accuracy | leak-free accuracy | leaked left out | images/s | minutes | device |")
print("|---|---|---:|---:|---:|---:|---:|---:|---|")
for name in names:
    path = out / name / "metrics.json"
    if not path.is_file():
        print(f"| {name} | | | failed or missing (see {name}.log) | | | | | |")
        continue
    m = json.loads(path.read_text())
    leak_free = "n/a" if m["leak_free_accuracy"] is None else f"{m['leak_free_accuracy']:.4f}"
    print(f"| {name} ({m['size']}) | {'raw' if m['raw'] else 'curated'} | {m['epochs_run']} ({m['best_epoch']}) | "
          f"{m['accuracy']:.4f} | {leak_free} | {m['leaked_test_images']} | {m['images_per_second']:.0f} | "
          f"{m['seconds'] / 60:.1f} | {m['device']} ({m['precision']}) |")
EOF
