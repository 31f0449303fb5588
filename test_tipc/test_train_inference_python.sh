#!/usr/bin/env bash
# The train -> eval -> export -> infer chain of one model, as the TIPC scripts of PaddleSeg / PaddleRS run it:
#   bash test_tipc/prepare.sh                 test_tipc/configs/<model>/train_infer_python.txt lite_train_lite_infer
#   bash test_tipc/test_train_inference_python.sh test_tipc/configs/<model>/train_infer_python.txt lite_train_lite_infer
# Every command is one of the package's tools (tools/*.py); each prints one status line,
#   Run successfully with command - <command>    or    Run failed with command - <command>
# also appended to test_tipc/output/<model>/results_python.log (each command's output: <step>.log beside it).
# Exit code: 0 when every command succeeded, 1 otherwise.
set -uo pipefail
config=${1:?usage: test_train_inference_python.sh <train_infer_python.txt> <mode>}
mode=${2:-lite_train_lite_infer}
cd "$(dirname "$0")/.."

value() {  # value of "key:value" (the first line with that key), "" when absent or null
    local v
    v=$(grep -m1 "^$1:" "$config" | cut -d: -f2-)
    [ "$v" = "null" ] && v=""
    printf '%s' "$v"
}
for_mode() {  # "lite_train_lite_infer=4|whole_train_whole_infer=200" -> the value for $mode
    printf '%s' "$1" | tr '|' '\n' | grep -m1 "^$mode=" | cut -d= -f2-
}

model=$(value model_name)
python=${PYTHON:-$(value python)}
python=${python:-python}
out=test_tipc/output/$model
status_log=$out/results_python.log
mkdir -p "$out"
: > "$status_log"
failed=0

run() {  # run <log name> <command...>: run it, print and record its status line
    local name=$1
    shift
    local cmd="$*"
    if eval "$cmd" > "$out/$name.log" 2>&1; then
        echo "Run successfully with command - $cmd" | tee -a "$status_log"
    else
        echo "Run failed with command - $cmd" | tee -a "$status_log"
        tail -n 5 "$out/$name.log" | sed 's/^/    /'
        failed=1
    fi
}

# ---- train
iters=$(for_mode "$(value train.iters)")
batch=$(for_mode "$(value train.batch_size)")
device=$(value --device)
work=$out/train
rm -rf "$work"
run train "$python $(value norm_train) train.iters=$iters train.batch_size=$batch --device ${device:-cpu} --work_dir $work"

# the weights the run selected (best model), else its last checkpoint
weights=$("$python" - "$work" <<'PY' 2>/dev/null
import json, os, sys
work = sys.argv[1]
best = os.path.join(work, "best_model.json")
if os.path.isfile(best) and json.load(open(best)).get("path"):
    print(json.load(open(best))["path"])
elif os.path.isfile(os.path.join(work, "checkpoints", "latest.txt")):
    print(os.path.join(work, "checkpoints", open(os.path.join(work, "checkpoints", "latest.txt")).read().strip()))
PY
)
weights=${weights:-$work/missing_weights.pdparams}

# ---- eval
run eval "$python $(value eval) --weights $weights --out $out/eval.json --out_dir $out/eval"

# ---- export (Paddle program + ONNX, every backend checked against dygraph)
export_dir=$out/export
run export "$python $(value norm_export) --weights $weights --out $export_dir"

# ---- inference: every backend x every thread count
inputs=""
images=$(value --images)
t0=$(value --t0)
t1=$(value --t1)
[ -n "$images" ] && inputs="--images $images"
[ -n "$t0" ] && inputs="--t0 $t0 --t1 $t1"
threshold=$(value --threshold)
[ -n "$threshold" ] && inputs="$inputs --threshold $threshold"
benchmark=$(value --benchmark)
for backend in $(value --backend | tr '|' ' '); do
    for threads in $(value --cpu_threads | tr '|' ' '); do
        run "infer_${backend}_t${threads}" "$python $(value inference) --model_dir $export_dir --backend $backend \
--cpu_threads $threads $inputs --out $out/infer_${backend}_t${threads} --benchmark ${benchmark:-1}"
    done
done

exit $failed
