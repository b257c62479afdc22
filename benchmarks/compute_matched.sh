#!/usr/bin/env bash
# The compute-matched protocol of BENCHMARKS.md: the neural methods get the same wall-clock
# budget per fit (2 minutes on elastic_tensor), with a cosine schedule that ends at the budget,
# on the same seeded folds (fold seed 0), once per training seed. A budget is a statement about
# the machine: run with one torch thread per run and at most one run per core, nothing else.
#
#   bash benchmarks/compute_matched.sh [TRAINING_SEEDS...]     # default: 0 1 2
#
# Results land in benchmarks/results/compute-matched/[seed-S/]<dataset>-<target>/;
# python benchmarks/paired_folds.py --protocol compute-matched benchmarks/results/compute-matched \
#   benchmarks/results/magpie-structure-rf prints the tables (the older budgeted runs elsewhere in
#   benchmarks/results predate the speed fixes, so they are left out).
set -euo pipefail
cd "$(dirname "$0")/.."
basisdb data fetch
seeds=("${@:-0 1 2}")
for seed in ${seeds[@]}; do
  where=benchmarks/results/compute-matched
  [ "$seed" = 0 ] || where=$where/seed-$seed
  for target in log10_K_VRH log10_G_VRH; do
    basisdb evaluate --dataset elastic_tensor --target "$target" --folds 5 --seed 0 --training-seed "$seed" \
      --threads 1 --minutes 2 --methods cgcnn,cft --out "$where/elastic_tensor-$target"
  done
done
