#!/usr/bin/env bash
# Writes a valid experiment of about N lines (default 2000) to stdout: many data sets,
# pipelines, pretrainings and evaluations, for benchmarking `gyrus check`.
set -euo pipefail
lines="${1:-2000}"
blocks=$(( (lines + 14) / 15 ))
for i in $(seq 1 "$blocks"); do
  cat <<EOF2
// Block $i
dataset corpus_$i = synthetic(subjects = $(( 16 + i % 64 )), size = 40^3, seed = $i)
dataset clinic_$i = synthetic(subjects = 64, size = 40^3, seed = $(( 1000 + i )))
pipeline prep_$i = crop(32^3) >> clip(lo = 0.5%, hi = 99.5%) >> zscore()
pipeline views_$i = prep_$i >> flip(p = 50%) >> gamma(0.7 .. 1.5) >> noise(sigma = 0.05)

pretrain model_$i {
  data      = corpus_$i |> views_$i
  encoder   = unet(width = $(( 8 + i % 4 * 8 )), stages = 4)
  objective = mae(mask = 60%, cube = 4) + 0.5 * simclr(temperature = 0.1)
  optimizer = adamw(lr = 1e-3, warmup = 1)
  epochs    = $(( 2 + i % 10 ))
  batch     = 4
}
evaluate model_$i on clinic_$i.lesion (shots = 16, repeats = 3)
EOF2
done
