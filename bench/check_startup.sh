#!/usr/bin/env bash
# Whole-process wall time of `gyrus check` (quickstart, the largest example, a generated
# 2,000-line file), `gyrus plan` on the ablation sweep, `gyrus emit --stage=ir` and a
# fully cached `gyrus run`, side by side with a process that does nothing (`true`).
# None of them loads LibTorch (a cached run never needs the runtime module).
# Goals (issue 8): check on the largest example <= 20 ms, on 2,000 lines <= 60 ms.
#
#   bash bench/check_startup.sh [build-dir] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
runs="${2:-20}"
gyrus="$build/bin/gyrus"

ms_per_run() {  # command...
  local start end
  start=$(date +%s%N)
  for _ in $(seq 1 "$runs"); do "$@" > /dev/null 2>&1 || true; done
  end=$(date +%s%N)
  echo $(( (end - start) / runs / 1000 ))  # microseconds
}

store="$(mktemp -d)"
trap 'rm -rf "$store"' EXIT
small=(--set corpus.subjects=8 --set clinic.subjects=16 --set base.epochs=1 --set base.batch=4
       --set base_lesion.shots=4 --set base_lesion.repeats=1 --set base_age.shots=4 --set base_age.repeats=1)
"$gyrus" run examples/quickstart.gy "${small[@]}" --store "$store" > /dev/null 2>&1 || { echo "bench: the warm-up run failed" >&2; exit 1; }

bash bench/gen_large.sh 2000 > "$store/large.gy"
base=$(ms_per_run true)
large=$(ms_per_run "$gyrus" check "$store/large.gy")
ablation=$(ms_per_run "$gyrus" check examples/ablation.gy)
plan=$(ms_per_run "$gyrus" plan examples/ablation.gy)
check=$(ms_per_run "$gyrus" check examples/quickstart.gy)
emit=$(ms_per_run "$gyrus" emit examples/quickstart.gy --stage=ir)
cached=$(ms_per_run "$gyrus" run examples/quickstart.gy "${small[@]}" --store "$store")

row() {  # label microseconds
  awk -v l="$1" -v t="$2" -v b="$base" 'BEGIN { printf "%-44s %10.2f %8.1f\n", l, t / 1000, t / b }'
}
printf '%-44s %10s %8s\n' "command ($runs runs each)" "ms/run" "x true"
row "true (process baseline)" "$base"
row "gyrus check examples/quickstart.gy" "$check"
row "gyrus check examples/ablation.gy (9 points)" "$ablation"
row "gyrus plan examples/ablation.gy" "$plan"
row "gyrus check, generated $(wc -l < "$store/large.gy")-line file" "$large"
row "gyrus emit --stage=ir" "$emit"
row "gyrus run (all stages cached)" "$cached"
