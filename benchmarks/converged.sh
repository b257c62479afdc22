#!/usr/bin/env bash
# Every run of the converged protocol in BENCHMARKS.md: each neural method trains to early
# stopping on the same seeded folds (fold seed 0), once per training seed; the forests and the
# mean come from benchmarks/results/magpie-structure-rf (they do not depend on the protocol).
# The CFT's default, since 2026-12-02, has the environment term (--environment); the runs made
# before that switch pass --no-environment, so that they still reproduce, and the default's
# runs are those of benchmarks/results/variants/environment (listed below). Every run but the
# last loop predates the size groups and fused AdamW: the code of commit ecce99b reproduces them
# to the digit, today's code within the spread over training seeds. The positional encoder is
# 128 wide since 2026-12-04 (the last loop); every run before it passes --hidden 256, the width
# it was made with, so that it still reproduces.
#
#   bash benchmarks/converged.sh [TRAINING_SEEDS...]     # default: 0 1 2
#
# One torch thread per run (two runs side by side use both cores of the reference machine).
# Results land in benchmarks/results/converged/[seed-S/]<dataset>-<target>-<method>/;
# benchmarks/paired_folds.py --protocol converged benchmarks/results prints the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
basisdb data fetch
seeds=("${@:-0 1 2}")
targets=("elastic_tensor log10_K_VRH" "elastic_tensor log10_G_VRH" "flla_2015 formation_energy_per_atom" "dielectric_constant band_gap")
for seed in ${seeds[@]}; do
  where=benchmarks/results/converged
  [ "$seed" = 0 ] || where=$where/seed-$seed
  for pair in "${targets[@]}"; do
    set -- $pair
    for method in cft cgcnn; do  # the CGCNN ignores --no-environment and --hidden
      basisdb evaluate --dataset "$1" --target "$2" --folds 5 --seed 0 --training-seed "$seed" \
        --threads 1 --methods "$method" --no-environment --hidden 256 --out "$where/$1-$2-$method"
    done
  done
done
# Ablations of the CFT (seed 0, log10 K_VRH): what carries its result
K="basisdb evaluate --dataset elastic_tensor --target log10_K_VRH --folds 5 --seed 0 --threads 1 --methods cft --no-environment --hidden 256"
$K --no-radial-bias --out benchmarks/results/ablations/no-radial-bias
$K --routing identity --out benchmarks/results/ablations/identity-routing
$K --no-lattice-branch --out benchmarks/results/ablations/no-lattice-branch
$K --radius 3 --out benchmarks/results/ablations/radius-3
$K --radius 6 --out benchmarks/results/ablations/radius-6
# Two variants against the recipe of the time (seed 0), compared on their best validation MAEs
# (python benchmarks/paired_folds.py --score validation benchmarks/results/variants); the recipe is
# rerun beside them because the runs above predate the recording of validation MAEs. The
# environment term won and is today's default: these runs are its converged rows
V=benchmarks/results/variants
C="basisdb evaluate --folds 5 --seed 0 --threads 1 --methods cft --hidden 256"
$C --dataset elastic_tensor --target log10_K_VRH --no-environment --out $V/cft-rerun/elastic_tensor-log10_K_VRH
$C --dataset elastic_tensor --target log10_K_VRH --environment --out $V/environment/elastic_tensor-log10_K_VRH
$C --dataset elastic_tensor --target log10_K_VRH --no-environment --ema 0.999 --out $V/ema-0.999/elastic_tensor-log10_K_VRH
for pair in "flla_2015 formation_energy_per_atom" "elastic_tensor log10_G_VRH" "dielectric_constant band_gap"; do
  set -- $pair
  $C --dataset "$1" --target "$2" --environment --out "$V/environment/$1-$2"
  $C --dataset "$1" --target "$2" --no-environment --out "$V/cft-rerun/$1-$2"
done
for target in log10_G_VRH log10_K_VRH; do  # a second training seed where the term is level or better
  $C --training-seed 1 --dataset elastic_tensor --target $target --environment --out $V/environment/seed-1/elastic_tensor-$target
  $C --training-seed 1 --dataset elastic_tensor --target $target --no-environment --out $V/cft-rerun/seed-1/elastic_tensor-$target
done
# The environment term's remaining training seeds, for its three-seed rows; the recipe's are the
# converged runs above (a rerun reproduces them exactly)
for run in "1 flla_2015 formation_energy_per_atom" "2 flla_2015 formation_energy_per_atom" \
           "2 elastic_tensor log10_K_VRH" "2 elastic_tensor log10_G_VRH" \
           "1 dielectric_constant band_gap" "2 dielectric_constant band_gap"; do
  set -- $run
  $C --training-seed "$1" --dataset "$2" --target "$3" --environment --out "$V/environment/seed-$1/$2-$3"
done
# Pretraining (30 CPU-minutes, fresh pairs), then fine-tuning against scratch on the same folds,
# with and without the cubic system held out (made without the environment term)
PRE=benchmarks/results/pretraining/orbit-distance-fresh
basisdb pretrain --out $PRE --minutes 30 --threads 1 --hidden 256
E="basisdb evaluate --folds 5 --seed 0 --threads 1 --no-environment --hidden 256"
$E --dataset elastic_tensor --target log10_K_VRH --pretrained $PRE --methods cft-pretrained \
  --out benchmarks/results/converged/elastic_tensor-log10_K_VRH-cft-pretrained
$E --dataset elastic_tensor --target log10_K_VRH --holdout-groups cubic --pretrained $PRE \
  --methods mean,composition-rf,magpie-structure-rf,cgcnn,cft,cft-pretrained \
  --out benchmarks/results/converged/elastic_tensor-log10_K_VRH-holdout-cubic
# and the CFT with plain Fourier features of the P1 basis (identity routing) on the same hold-out
$E --dataset elastic_tensor --target log10_K_VRH --holdout-groups cubic --routing identity --methods cft \
  --out benchmarks/results/converged/elastic_tensor-log10_K_VRH-holdout-cubic-identity-routing
# After the size groups and fused AdamW (2026-12-02): the default CFT over training seeds 0 1 2
# on the targets where a fit is short, against its runs above (the same method and seeds, the
# floating-point course of training changed)
for seed in 0 1 2; do
  where=""
  [ "$seed" = 0 ] || where="seed-$seed/"
  for pair in "elastic_tensor log10_K_VRH" "elastic_tensor log10_G_VRH" "dielectric_constant band_gap"; do
    set -- $pair
    $C --training-seed "$seed" --dataset "$1" --target "$2" --out "$V/size-groups/$where$1-$2"
  done
done
# The ablations, the transfer and the cubic hold-out again with today's default CFT (2026-12-03;
# the runs above made them without the environment term): seed 0, and seeds 1 and 2 for the
# three switches of the architecture
A=benchmarks/results/ablations/default
$C --dataset elastic_tensor --target log10_K_VRH --no-radial-bias --out $A/no-radial-bias
$C --dataset elastic_tensor --target log10_K_VRH --routing identity --out $A/identity-routing
$C --dataset elastic_tensor --target log10_K_VRH --no-lattice-branch --out $A/no-lattice-branch
$C --dataset elastic_tensor --target log10_K_VRH --radius 3 --out $A/radius-3
$C --dataset elastic_tensor --target log10_K_VRH --radius 6 --out $A/radius-6
for seed in 1 2; do
  K="$C --training-seed $seed --dataset elastic_tensor --target log10_K_VRH"
  $K --no-radial-bias --out $A/seed-$seed/no-radial-bias
  $K --routing identity --out $A/seed-$seed/identity-routing
  $K --no-lattice-branch --out $A/seed-$seed/no-lattice-branch
done
D="basisdb evaluate --folds 5 --seed 0 --threads 1 --dataset elastic_tensor --target log10_K_VRH --pretrained $PRE --hidden 256"
$D --methods cft-pretrained --out benchmarks/results/converged/default/elastic_tensor-log10_K_VRH-cft-pretrained
$D --holdout-groups cubic --methods cft,cft-pretrained \
  --out benchmarks/results/converged/default/elastic_tensor-log10_K_VRH-holdout-cubic
# Statistics of the atoms' element properties in the CFT's head (--composition): band gap,
# where a forest on Magpie statistics leads, and K (2026-12-03), seeds 0-2; formation energy,
# seeds 0-1
for seed in 0 1 2; do
  where=""
  [ "$seed" = 0 ] || where="seed-$seed/"
  for pair in "dielectric_constant band_gap" "elastic_tensor log10_K_VRH" "flla_2015 formation_energy_per_atom"; do
    set -- $pair
    [ "$1" = flla_2015 ] && [ "$seed" = 2 ] && continue
    $C --training-seed "$seed" --dataset "$1" --target "$2" --composition --out "$V/composition/$where$1-$2"
  done
done
# The default CFT again after it kept one atom per centring class (2026-12-03): the same
# model, on a fraction of the atoms
for seed in 0 1 2; do
  where=""
  [ "$seed" = 0 ] || where="seed-$seed/"
  for pair in "elastic_tensor log10_K_VRH" "dielectric_constant band_gap"; do
    set -- $pair
    $C --training-seed "$seed" --dataset "$1" --target "$2" --out "$V/centring/$where$1-$2"
  done
done
# Smaller CFTs, to predict at the CGCNN's rate with every frame (2026-12-03): seeds 0-2, one
# layer on K, G and band gap, width 32 on K
for seed in 0 1 2; do
  where=""
  [ "$seed" = 0 ] || where="seed-$seed/"
  for pair in "elastic_tensor log10_K_VRH" "elastic_tensor log10_G_VRH" "dielectric_constant band_gap"; do
    set -- $pair
    $C --training-seed "$seed" --dataset "$1" --target "$2" --d-model 64 --hidden 64 --blocks 2 --layers 1 \
      --out "$V/compact-1layer/$where$1-$2"
  done
  $C --training-seed "$seed" --dataset elastic_tensor --target log10_K_VRH --d-model 32 --hidden 64 --blocks 2 \
    --out "$V/compact-d32/${where}elastic_tensor-log10_K_VRH"
done
# Pretraining with each draw of pairs for three epochs (2026-12-03; only its metrics are
# shipped), and fine-tuning from the shipped encoder over training seeds 0-2 with today's code
basisdb pretrain --out benchmarks/results/pretraining/orbit-distance-redraw3 --minutes 30 --threads 1 --hidden 256 \
  --redraw-every 3 --epochs 1000
for seed in 0 1 2; do
  where=""
  [ "$seed" = 0 ] || where="seed-$seed/"
  for pair in "elastic_tensor log10_K_VRH" "elastic_tensor log10_G_VRH" "dielectric_constant band_gap"; do
    set -- $pair
    basisdb evaluate --folds 5 --seed 0 --threads 1 --methods cft-pretrained --pretrained "$PRE" \
      --training-seed "$seed" --dataset "$1" --target "$2" --out "$V/pretrained/$where$1-$2"
  done
done
# Training on the loss of the frame-averaged prediction (2026-12-03): K, seed 0
$C --dataset elastic_tensor --target log10_K_VRH --train-frames all --out "$V/all-frames/elastic_tensor-log10_K_VRH"
# The same pretraining with an encoder twice as wide (2026-12-03; only its metrics are shipped)
basisdb pretrain --out benchmarks/results/pretraining/orbit-distance-hidden512 --minutes 30 --threads 1 \
  --redraw-every 3 --epochs 1000 --hidden 512
# Values filtered by the pair's distances in attention (--pair-filter, 2026-12-03): K and G, seeds 0-2
for seed in 0 1 2; do
  where=""
  [ "$seed" = 0 ] || where="seed-$seed/"
  for target in log10_K_VRH log10_G_VRH; do
    $C --training-seed "$seed" --dataset elastic_tensor --target "$target" --pair-filter \
      --out "$V/pair-filter/${where}elastic_tensor-$target"
  done
done
# The CFT without its positional encoding (--no-positions, 2026-12-03): tokens carry elements and
# environments alone. Every target and the cubic hold-out (beside the default's, for seeds 1 and
# 2) over seeds 0-2
for seed in 0 1 2; do
  where=""
  [ "$seed" = 0 ] || where="seed-$seed/"
  $C --training-seed "$seed" --dataset elastic_tensor --target log10_K_VRH --no-positions --out "$A/${where}no-positions"
  for pair in "elastic_tensor log10_G_VRH" "dielectric_constant band_gap" "flla_2015 formation_energy_per_atom"; do
    set -- $pair
    $C --training-seed "$seed" --dataset "$1" --target "$2" --no-positions --out "$A/${where}no-positions-$2"
  done
done
for seed in 0 1 2; do
  where=""
  [ "$seed" = 0 ] || where="seed-$seed/"
  $C --training-seed "$seed" --dataset elastic_tensor --target log10_K_VRH --no-positions --holdout-groups cubic \
    --out "$A/${where}no-positions-holdout-cubic"
  [ "$seed" = 0 ] && continue  # the default's seed 0 is the hold-out run above
  $C --training-seed "$seed" --dataset elastic_tensor --target log10_K_VRH --holdout-groups cubic \
    --out "benchmarks/results/converged/default/${where}elastic_tensor-log10_K_VRH-holdout-cubic"
done
# Positions left out of a quarter of the training structures (--position-dropout 0.25,
# 2026-12-03): the model then predicts the groups it was not trained on without positions. K, G
# and band gap over seeds 0-2, formation energy over seeds 0-1, and the cubic hold-out over
# seeds 0-2; a half (0.5) on K and the hold-out, seed 0 (and seed 1 of the hold-out)
for seed in 0 1 2; do
  where=""
  [ "$seed" = 0 ] || where="seed-$seed/"
  for pair in "elastic_tensor log10_K_VRH" "elastic_tensor log10_G_VRH" "dielectric_constant band_gap"; do
    set -- $pair
    $C --training-seed "$seed" --dataset "$1" --target "$2" --position-dropout 0.25 \
      --out "$V/position-dropout/${where}$1-$2"
  done
  [ "$seed" = 2 ] || $C --training-seed "$seed" --dataset flla_2015 --target formation_energy_per_atom \
    --position-dropout 0.25 --out "$V/position-dropout/${where}flla_2015-formation_energy_per_atom"
  $C --training-seed "$seed" --dataset elastic_tensor --target log10_K_VRH --position-dropout 0.25 \
    --holdout-groups cubic --out "$V/position-dropout/${where}elastic_tensor-log10_K_VRH-holdout-cubic"
done
$C --training-seed 0 --dataset elastic_tensor --target log10_K_VRH --position-dropout 0.5 \
  --out "$V/position-dropout-0.5/elastic_tensor-log10_K_VRH"
for seed in 0 1; do
  where=""
  [ "$seed" = 0 ] || where="seed-$seed/"
  $C --training-seed "$seed" --dataset elastic_tensor --target log10_K_VRH --position-dropout 0.5 \
    --holdout-groups cubic --out "$V/position-dropout-0.5/${where}elastic_tensor-log10_K_VRH-holdout-cubic"
done
# The forest's structure features in the CFT's head (--cell-statistics: log volume per atom, log
# density, packing fraction, log primitive sites; 2026-12-03): K and G over seeds 0-2, and with
# --composition on band gap over seeds 0-2 and on K, seed 0
for seed in 0 1 2; do
  where=""
  [ "$seed" = 0 ] || where="seed-$seed/"
  for target in log10_K_VRH log10_G_VRH; do
    $C --training-seed "$seed" --dataset elastic_tensor --target $target --cell-statistics \
      --out "$V/cell-statistics/${where}elastic_tensor-$target"
  done
  $C --training-seed "$seed" --dataset dielectric_constant --target band_gap --composition --cell-statistics \
    --out "$V/composition-cell/${where}dielectric_constant-band_gap"
done
$C --training-seed 0 --dataset elastic_tensor --target log10_K_VRH --composition --cell-statistics \
  --out "$V/composition-cell/elastic_tensor-log10_K_VRH"
# The training recipe's learning rate (a third and twice), batch size (half) and patience (twice)
# on K and G, and three Transformer layers on formation energy; seed 0 (and seeds 1-2 of G at 2e-3)
for target in log10_K_VRH log10_G_VRH; do
  $C --dataset elastic_tensor --target $target --lr 3e-4 --out "$V/learning-rate/elastic_tensor-$target"
  $C --dataset elastic_tensor --target $target --lr 2e-3 --out "$V/learning-rate-2e-3/elastic_tensor-$target"
  $C --dataset elastic_tensor --target $target --batch-size 16 --out "$V/batch-16/elastic_tensor-$target"
  $C --dataset elastic_tensor --target $target --patience 60 --out "$V/patience-60/elastic_tensor-$target"
done
for seed in 1 2; do  # the one that looked better on seed 0
  $C --training-seed $seed --dataset elastic_tensor --target log10_G_VRH --lr 2e-3 \
    --out "$V/learning-rate-2e-3/seed-$seed/elastic_tensor-log10_G_VRH"
done
$C --dataset flla_2015 --target formation_energy_per_atom --layers 3 --out "$V/layers-3/flla_2015-formation_energy_per_atom"
# One round of message passing between neighbours after every Transformer layer
# (--interactions, 2026-12-04): formation energy, K and G over seeds 0-2
for seed in 0 1 2; do
  where=""
  [ "$seed" = 0 ] || where="seed-$seed/"
  for pair in "flla_2015 formation_energy_per_atom" "elastic_tensor log10_K_VRH" "elastic_tensor log10_G_VRH"; do
    set -- $pair
    $C --training-seed "$seed" --dataset "$1" --target "$2" --interactions --out "$V/interactions/${where}$1-$2"
  done
  # and with a third Transformer layer on formation energy, with the composition statistics on
  # band gap and K
  $C --training-seed "$seed" --dataset flla_2015 --target formation_energy_per_atom --interactions --layers 3 \
    --out "$V/interactions-layers-3/${where}flla_2015-formation_energy_per_atom"
  for pair in "dielectric_constant band_gap" "elastic_tensor log10_K_VRH"; do
    set -- $pair
    $C --training-seed "$seed" --dataset "$1" --target "$2" --interactions --composition \
      --out "$V/interactions-composition/${where}$1-$2"
  done
  # with edge gates in the interactions (--interaction-gates, 2026-12-04)
  for pair in "flla_2015 formation_energy_per_atom" "elastic_tensor log10_K_VRH" "elastic_tensor log10_G_VRH"; do
    set -- $pair
    $C --training-seed "$seed" --dataset "$1" --target "$2" --interaction-gates --out "$V/interactions-gates/${where}$1-$2"
  done
done
# Pretraining with the embeddings' squared distance as the orbit distance (--readout squared,
# 2026-12-04; the encoder is shipped), and fine-tuning from it on K and G over seeds 0-2
PRE_SQUARED=benchmarks/results/pretraining/orbit-distance-squared
basisdb pretrain --out $PRE_SQUARED --minutes 30 --threads 1 --readout squared --hidden 256
for seed in 0 1 2; do
  where=""
  [ "$seed" = 0 ] || where="seed-$seed/"
  for pair in "elastic_tensor log10_K_VRH" "elastic_tensor log10_G_VRH"; do
    set -- $pair
    basisdb evaluate --folds 5 --seed 0 --threads 1 --methods cft-pretrained --pretrained "$PRE_SQUARED" \
      --training-seed "$seed" --dataset "$1" --target "$2" --out "$V/pretrained-squared/${where}$1-$2"
  done
done
# The positional encoder 128 wide (--hidden 128, 2026-12-04), the default since: every target over
# training seeds 0-2 (BENCHMARKS.md, "Today's default CFT")
for seed in 0 1 2; do
  where=benchmarks/results/variants/encoder-hidden-128
  [ "$seed" = 0 ] || where=$where/seed-$seed
  for pair in "${targets[@]}"; do
    set -- $pair
    basisdb evaluate --dataset "$1" --target "$2" --folds 5 --seed 0 --training-seed "$seed" \
      --threads 1 --methods cft --hidden 128 --out "$where/$1-$2"
  done
done
# and with the element-property statistics in the head (--composition), K and band gap over seeds 0-2
for seed in 0 1 2; do
  where=benchmarks/results/variants/encoder-hidden-128-composition
  [ "$seed" = 0 ] || where=$where/seed-$seed
  for pair in "elastic_tensor log10_K_VRH" "dielectric_constant band_gap"; do
    set -- $pair
    basisdb evaluate --dataset "$1" --target "$2" --folds 5 --seed 0 --training-seed "$seed" \
      --threads 1 --methods cft --hidden 128 --composition --out "$where/$1-$2"
  done
done
# and with message passing between neighbours and three Transformer layers on formation energy,
# seeds 0-2
for seed in 0 1 2; do
  where=benchmarks/results/variants/encoder-hidden-128-interactions-layers-3
  [ "$seed" = 0 ] || where=$where/seed-$seed
  basisdb evaluate --dataset flla_2015 --target formation_energy_per_atom --folds 5 --seed 0 --training-seed "$seed" \
    --threads 1 --methods cft --hidden 128 --interactions --layers 3 --out "$where/flla_2015-formation_energy_per_atom"
done
# each atom's positional encodings averaged over the frames, the Transformer run once per structure
# (--frame-average encodings, 2026-12-05): K and G over seeds 0-2, formation energy seed 0
for seed in 0 1 2; do
  where=benchmarks/results/variants/frame-averaged-encodings
  [ "$seed" = 0 ] || where=$where/seed-$seed
  for target in log10_K_VRH log10_G_VRH; do
    basisdb evaluate --dataset elastic_tensor --target $target --folds 5 --seed 0 --training-seed "$seed" \
      --threads 1 --methods cft --frame-average encodings --out "$where/elastic_tensor-$target"
  done
done
basisdb evaluate --dataset flla_2015 --target formation_energy_per_atom --folds 5 --seed 0 --training-seed 0 \
  --threads 1 --methods cft --frame-average encodings \
  --out benchmarks/results/variants/frame-averaged-encodings/flla_2015-formation_energy_per_atom
# and with the frames' pair bias in attention (--frame-pairs, implies --frame-average encodings):
# K and G over seeds 0-2
for seed in 0 1 2; do
  where=benchmarks/results/variants/frame-pairs
  [ "$seed" = 0 ] || where=$where/seed-$seed
  for target in log10_K_VRH log10_G_VRH; do
    basisdb evaluate --dataset elastic_tensor --target $target --folds 5 --seed 0 --training-seed "$seed" \
      --threads 1 --methods cft --frame-pairs --out "$where/elastic_tensor-$target"
  done
done
# both networks fitted on formation energy first (flla_2015, without the compounds of
# elastic_tensor), every fold starting from those weights (--transfer-from, 2026-12-05):
# K and G over seeds 0-2, one method per run
for seed in 0 1 2; do
  where=benchmarks/results/variants/transfer-formation-energy
  [ "$seed" = 0 ] || where=$where/seed-$seed
  for target in log10_K_VRH log10_G_VRH; do
    for method in cft cgcnn; do
      basisdb evaluate --dataset elastic_tensor --target $target --folds 5 --seed 0 --training-seed "$seed" \
        --threads 1 --methods $method --transfer-from flla_2015:formation_energy_per_atom \
        --out "$where/elastic_tensor-$target-$method"
    done
  done
done
# and the CFT with the element-property statistics in its head as well: K and band gap over
# seeds 0-2, with the CGCNN's transfer to band gap beside it (band gap: 2026-12-05, code of 06dbc4c)
for seed in 0 1 2; do
  where=benchmarks/results/variants/transfer-formation-energy-composition
  [ "$seed" = 0 ] || where=$where/seed-$seed
  for pair in "elastic_tensor log10_K_VRH" "dielectric_constant band_gap"; do
    set -- $pair
    basisdb evaluate --dataset "$1" --target "$2" --folds 5 --seed 0 --training-seed "$seed" \
      --threads 1 --methods cft --composition --transfer-from flla_2015:formation_energy_per_atom \
      --out "$where/$1-$2-cft"
  done
  where=benchmarks/results/variants/transfer-formation-energy
  [ "$seed" = 0 ] || where=$where/seed-$seed
  basisdb evaluate --dataset dielectric_constant --target band_gap --folds 5 --seed 0 --training-seed "$seed" \
    --threads 1 --methods cgcnn --transfer-from flla_2015:formation_energy_per_atom \
    --out "$where/dielectric_constant-band_gap-cgcnn"
done
# and with a fresh output head in every fold (--fresh-head, 2026-12-05, code of 51e3254): the CFT with
# --composition and the CGCNN, K and G over seeds 0-2; a seed's source fit is read back from the
# cache by its second run
for seed in 0 1 2; do
  for target in log10_K_VRH log10_G_VRH; do
    where=benchmarks/results/variants/transfer-formation-energy-composition-fresh-head
    [ "$seed" = 0 ] || where=$where/seed-$seed
    basisdb evaluate --dataset elastic_tensor --target $target --folds 5 --seed 0 --training-seed "$seed" \
      --threads 1 --methods cft --composition --fresh-head --transfer-from flla_2015:formation_energy_per_atom \
      --out "$where/elastic_tensor-$target-cft"
    where=benchmarks/results/variants/transfer-formation-energy-fresh-head
    [ "$seed" = 0 ] || where=$where/seed-$seed
    basisdb evaluate --dataset elastic_tensor --target $target --folds 5 --seed 0 --training-seed "$seed" \
      --threads 1 --methods cgcnn --fresh-head --transfer-from flla_2015:formation_energy_per_atom \
      --out "$where/elastic_tensor-$target-cgcnn"
  done
done
# the CFT with the statistics and the transfer on G with the source's head, and on band gap with a fresh
# head (2026-12-05, code of 51e3254; the G runs read the K runs' source fits back)
for seed in 0 1 2; do
  where=benchmarks/results/variants/transfer-formation-energy-composition
  [ "$seed" = 0 ] || where=$where/seed-$seed
  basisdb evaluate --dataset elastic_tensor --target log10_G_VRH --folds 5 --seed 0 --training-seed "$seed" \
    --threads 1 --methods cft --composition --transfer-from flla_2015:formation_energy_per_atom \
    --out "$where/elastic_tensor-log10_G_VRH-cft"
  where=benchmarks/results/variants/transfer-formation-energy-composition-fresh-head
  [ "$seed" = 0 ] || where=$where/seed-$seed
  basisdb evaluate --dataset dielectric_constant --target band_gap --folds 5 --seed 0 --training-seed "$seed" \
    --threads 1 --methods cft --composition --fresh-head --transfer-from flla_2015:formation_energy_per_atom \
    --out "$where/dielectric_constant-band_gap-cft"
done
# the fresh head without the statistics (the CFT, K and G), and the statistics with a fresh head
# fine-tuned at twice the learning rate (--fine-tune-lr 2e-3; K and G), 2026-12-05, code of bf8a9ca
for seed in 0 1 2; do
  for target in log10_G_VRH log10_K_VRH; do
    where=benchmarks/results/variants/transfer-formation-energy-fresh-head
    [ "$seed" = 0 ] || where=$where/seed-$seed
    basisdb evaluate --dataset elastic_tensor --target $target --folds 5 --seed 0 --training-seed "$seed" \
      --threads 1 --methods cft --fresh-head --transfer-from flla_2015:formation_energy_per_atom \
      --out "$where/elastic_tensor-$target-cft"
    where=benchmarks/results/variants/transfer-formation-energy-composition-fresh-head-fine-tune-2e-3
    [ "$seed" = 0 ] || where=$where/seed-$seed
    basisdb evaluate --dataset elastic_tensor --target $target --folds 5 --seed 0 --training-seed "$seed" \
      --threads 1 --methods cft --composition --fresh-head --fine-tune-lr 2e-3 \
      --transfer-from flla_2015:formation_energy_per_atom --out "$where/elastic_tensor-$target"
  done
done
# and at a third of the learning rate (--fine-tune-lr 3e-4), K, training seed 0 only
basisdb evaluate --dataset elastic_tensor --target log10_K_VRH --folds 5 --seed 0 --training-seed 0 \
  --threads 1 --methods cft --composition --fresh-head --fine-tune-lr 3e-4 \
  --transfer-from flla_2015:formation_energy_per_atom \
  --out benchmarks/results/variants/transfer-formation-energy-composition-fresh-head-fine-tune-3e-4/elastic_tensor-log10_K_VRH
# Pretraining with the squared readout and each draw of pairs for three epochs (2026-12-05; only
# its metrics are shipped)
basisdb pretrain --out benchmarks/results/pretraining/orbit-distance-squared-redraw3 --minutes 30 --threads 1 \
  --readout squared --hidden 256 --redraw-every 3 --epochs 1000
