# Sourced by converged.sh and compute_matched.sh: one evaluation of BENCHMARKS.md, on the folds
# every method shares (5 folds, fold seed 0), with one torch thread (two runs side by side use
# both cores of the reference machine).
#
#   fit SEED ROOT NAME [OPTIONS...]    basisdb evaluate at training seed SEED, written to ROOT/NAME
#                                      (seed 0) or ROOT/seed-SEED/NAME
fit() {
  local seed=$1 root=$2 name=$3
  shift 3
  [ "$seed" = 0 ] || root=$root/seed-$seed
  basisdb evaluate --folds 5 --seed 0 --training-seed "$seed" --threads 1 "$@" --out "$root/$name"
}
