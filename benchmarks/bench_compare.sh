#!/usr/bin/env bash
# Does curation help on FER-2013? The `compare` command as a user runs it: fast cnn, raw and curated data
# × 3 seeds as one experiment, waited for, then compare.json (paired t interval over seeds, paired
# bootstrap over test images, verdict) and the wall time of the whole thing.
#
#   benchmarks/bench_compare.sh [DATA] [WORKSPACE]   # 6 fast cnn runs: long on a CPU, use a GPU
#   EPOCHS=5 benchmarks/bench_compare.sh ...         # fewer epochs per run (default: the fast size's 10)
#
# DATA defaults to ../shared/fer2013, WORKSPACE to /tmp/ws_cmp. A workspace without edits would make both
# arms the same data, so the curation here is the `recommended` policy (`curate`: dedupe, leaks, non-faces,
# and mislabels when a mislabel result exists) when the workspace holds no edit yet; an existing
# workspace's edits are used as they are.
# $FER_AUDIT_MAX_RUNS runs side by side (default 1). The run is not for the test suite (too long).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$here/../shared/fer2013}"
workspace="${2:-/tmp/ws_cmp}"
python="${PYTHON:-python}"
export TF_FORCE_GPU_ALLOW_GROWTH=true TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"

echo "bench_compare: data $data, workspace $workspace, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)," \
     "max runs ${FER_AUDIT_MAX_RUNS:-1}"
if [[ "$("$python" -m fer_core edit history --json --workspace "$workspace")" == "[]" ]]; then
    "$python" -m fer_core curate "$data" --policy recommended --workspace "$workspace"
fi
time "$python" -m fer_core compare "$data" --model cnn --size fast ${EPOCHS:+--epochs "$EPOCHS"} --seeds 3 --wait \
    --workspace "$workspace"
