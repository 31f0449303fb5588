#!/usr/bin/env bash
# Generate the tiny dataset a TIPC config needs (no downloads): the real on-disk layout, synthetic content.
#   bash test_tipc/prepare.sh test_tipc/configs/lsnet_diffFPN/train_infer_python.txt lite_train_lite_infer
set -euo pipefail
config=${1:?usage: prepare.sh <train_infer_python.txt> <mode>}
mode=${2:-lite_train_lite_infer}
cd "$(dirname "$0")/.."
python=$(grep -m1 "^python:" "$config" | cut -d: -f2-)
python=${PYTHON:-${python:-python}}
data=$(grep -m1 "^train_infer_img_dir:" "$config" | cut -d: -f2-)
case "$mode" in
  lite_train_lite_infer) n_train=4; n_val=2; n_isaid=2 ;;
  whole_train_whole_infer) n_train=24; n_val=6; n_isaid=8 ;;
  *) echo "unknown mode $mode (lite_train_lite_infer | whole_train_whole_infer)" >&2; exit 2 ;;
esac
rm -rf "$data"
case "$(basename "$data")" in
  cdd) "$python" -m rsrepro.data.synthetic --dataset cdd --out "$data" --num_train "$n_train" --num_val "$n_val" \
         --num_test 0 --size 64 ;;
  cityscapes) "$python" -m rsrepro.data.synthetic --dataset cityscapes --out "$data" --num_train "$n_train" \
                --num_val "$n_val" --height 64 --width 128 ;;
  isaid) "$python" -m rsrepro.data.synthetic --dataset isaid --out "$data" --num_train "$n_isaid" --num_val 1 \
           --height 256 --width 256 --min_objects 12 --max_objects 20 ;;
  *) echo "prepare.sh: no generator for $data" >&2; exit 2 ;;
esac
