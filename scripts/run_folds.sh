#!/usr/bin/env bash
# Train and evaluate every fold of a paper experiment (one process per fold: Hydra multirun and DDP
# do not mix), then write the per-fold + mean table in the paper's layout.
#
#   scripts/run_folds.sh pascal5i_resnet50 protocol=official data.root=/data/VOC2012 \
#       trainer=ddp trainer.devices=4
#   scripts/run_folds.sh coco20i_resnet50 protocol=official data.annotation=point \
#       data.root=/data/COCO2014 --eval eval.seed=[0,1,2,3,4]
#
# Overrides before --train / --eval go to both training and evaluation; those after --train only
# to vrpsam-train, those after --eval only to vrpsam-eval. The evaluation takes the protocol,
# image size and reference annotation from each fold's checkpoint.
# OUT (default outputs/<experiment>) holds fold<k>/ run folders, fold<k>/eval/ and table.md.
# FOLDS="0 1" runs those folds only (default: every fold of the experiment's dataset).
set -euo pipefail
experiment=${1:?usage: scripts/run_folds.sh EXPERIMENT [overrides] [--train ...] [--eval ...]}
shift
shared=() train_only=() eval_only=()
target=shared
for arg in "$@"; do
  case "$arg" in
    --train) target=train_only ;;
    --eval) target=eval_only ;;
    *) eval "$target+=(\"\$arg\")" ;;
  esac
done
out=${OUT:-outputs/$experiment}
# Every fold of the experiment's dataset (PASCAL-5i/COCO-20i 4, LVIS-92i 10, FSS-1000 1), or FOLDS.
folds=${FOLDS:-$(python - "$experiment" <<'PY'
import sys
from hydra import compose, initialize_config_dir
from vrpsam.conf import CONFIG_DIR
from vrpsam.data.folds import FOLD_COUNTS
with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
    cfg = compose(config_name="train", overrides=[f"experiment={sys.argv[1]}"])
print(*range(FOLD_COUNTS[cfg.data.dataset]))
PY
)}
for fold in $folds; do
  vrpsam-train "experiment=$experiment" "data.fold=$fold" "hydra.run.dir=$out/fold$fold" \
    ${shared[@]+"${shared[@]}"} ${train_only[@]+"${train_only[@]}"}
  vrpsam-eval "experiment=$experiment" "data.fold=$fold" \
    "ckpt_path=$out/fold$fold/checkpoints/best.ckpt" "hydra.run.dir=$out/fold$fold/eval" \
    ${shared[@]+"${shared[@]}"} ${eval_only[@]+"${eval_only[@]}"}
done
python "$(dirname "$0")/summarize_folds.py" "$out"/fold*/eval/eval.json --out "$out/table.md"
