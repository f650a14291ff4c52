#!/usr/bin/env bash
# Train and evaluate every fold of a paper experiment (one process per fold: Hydra multirun and DDP
# do not mix), then write the per-fold + mean table in the paper's layout.
#
#   scripts/run_folds.sh pascal5i_resnet50 data.root=/data/VOC2012 trainer=ddp trainer.devices=4
#
# OUT (default outputs/<experiment>) holds fold<k>/ run folders, fold<k>/eval/ and table.md.
# Extra arguments are Hydra overrides passed to both training and evaluation.
set -euo pipefail
experiment=${1:?usage: scripts/run_folds.sh EXPERIMENT [overrides...]}
shift
out=${OUT:-outputs/$experiment}
for fold in 0 1 2 3; do
  vrpsam-train "experiment=$experiment" "data.fold=$fold" "hydra.run.dir=$out/fold$fold" "$@"
  vrpsam-eval "experiment=$experiment" "data.fold=$fold" \
    "ckpt_path=$out/fold$fold/checkpoints/best.ckpt" "hydra.run.dir=$out/fold$fold/eval" "$@"
done
python "$(dirname "$0")/summarize_folds.py" "$out"/fold*/eval/eval.json --out "$out/table.md"
