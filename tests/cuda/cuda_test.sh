#!/usr/bin/env bash
# The CUDA tests (ctest label `cuda`, tests/cuda/CMakeLists.txt; docs/gpu.md): the real
# binary on a GPU. Where `nvidia-smi -L` lists no GPU, each prints "skipped: no CUDA
# device" and exits 77 (ctest's SKIP_RETURN_CODE).
#
#   cuda_test.sh CASE GYRUS ROOT WORK
#
# CASE is one of
#   pretrain_matches_cpu  a pretraining on the GPU and on the CPU, same seed: the first
#                         epoch's loss within 1e-2 and the final loss within 2e-2 (relative)
#   bf16_trains           the same pretraining in bf16 on the GPU: finite, falling losses;
#                         bf16 recorded; a stage of its own (not the fp32 one's hash)
#   probe_and_finetune    a pretraining, a linear probe and a bf16 fine-tuning on the GPU:
#                         every stage ran there, every metric finite and in range
#   resume                a GPU pretraining killed (SIGKILL) once its first checkpoint is
#                         written resumes from it and finishes every epoch
# Environment:
#   GYRUS_CUDA_TEST_DEVICE   the device under test: cuda (default), cuda:N; `cpu` runs every
#                            case on the CPU (a check of these scripts on a machine without
#                            a GPU: scripts/gpu-check.sh --cpu); `skip` skips
#   GYRUS_CUDA_TEST_THREADS  --threads for the runs (default: gyrus's, all cores)
set -uo pipefail

case_="${1:?case}"
gyrus="${2:?gyrus binary}"
root="${3:?source root}"
work="${4:?work directory}"
device="${GYRUS_CUDA_TEST_DEVICE:-cuda}"
here="$root/tests/cuda"

say() { echo "cuda-test: $case_: $*"; }
fail() { say "FAIL: $*"; exit 1; }
skip() { say "skipped: $*"; exit 77; }

case "$device" in
  skip) skip "GYRUS_CUDA_TEST_DEVICE=skip" ;;
  cpu) say "GYRUS_CUDA_TEST_DEVICE=cpu: every run on the CPU (a check of the test itself, not of CUDA)" ;;
  cuda|cuda:[0-9]*)
    command -v nvidia-smi > /dev/null 2>&1 || skip "no CUDA device (no nvidia-smi)"
    gpus="$(nvidia-smi -L 2> /dev/null | grep -E '^GPU [0-9]+:' || true)"
    [ -n "$gpus" ] || skip "no CUDA device (nvidia-smi -L lists no GPU)"
    say "$(echo "$gpus" | head -1)" ;;
  *) fail "GYRUS_CUDA_TEST_DEVICE='$device': use cuda, cuda:N, cpu or skip" ;;
esac

[ -x "$gyrus" ] || fail "no gyrus binary at $gyrus"
rm -rf "$work"
mkdir -p "$work"
threads=()
[ -n "${GYRUS_CUDA_TEST_THREADS:-}" ] && threads=(--threads "$GYRUS_CUDA_TEST_THREADS")

# run NAME DEVICE FILE [ARGS...]: gyrus run --json into $work/NAME.{json,err}, store $work/NAME
run() {
  local name="$1" dev="$2" file="$3"
  shift 3
  local start=$SECONDS rc=0
  "$gyrus" run "$file" --device "$dev" "${threads[@]}" --store "$work/$name" --json "$@" \
    > "$work/$name.json" 2> "$work/$name.err" || rc=$?
  say "$name: gyrus run --device $dev $(basename "$file") $* -> exit $rc in $((SECONDS - start)) s"
  if [ "$rc" != 0 ]; then
    sed 's/^/    /' "$work/$name.err"
    fail "$name: gyrus run exited $rc"
  fi
}

# py ARGS... < SCRIPT: the checks, in python3, with tests/cuda/cuda_checks.py importable
# (assertion messages name what is wrong).
py() { PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" python3 - "$@"; }


case "$case_" in
pretrain_matches_cpu)
  # Tolerances (docs/gpu.md): the device is not part of a stage's hash, so a result
  # computed on a GPU is reused on a CPU and the two must agree up to rounding. The
  # initial weights, sample order and masks are drawn on the host; what differs is the
  # kernels' arithmetic: cuDNN's convolutions use TF32 by default (10-bit mantissa,
  # ~5e-4 relative per product), other summation orders and non-deterministic
  # algorithms. Over 16 AdamW steps that moves the loss by ~1e-3 relatively; a wrong
  # mask, normalisation or loss term moves it by far more than 2e-2.
  run gpu "$device" "$here/pretrain.gy"
  run cpu cpu "$here/pretrain.gy"
  py "$work" "$device" <<'PY' || fail "the GPU and CPU pretrainings disagree"
from cuda_checks import *
work, device = sys.argv[1], sys.argv[2]
g, gm = load_run(f"{work}/gpu.json", f"{work}/gpu", device)
c, cm = load_run(f"{work}/cpu.json", f"{work}/cpu", "cpu")
assert g["stages"][0]["hash"] == c["stages"][0]["hash"], "the device changed the stage hash"
hg, hc = history(f"{work}/gpu", g), history(f"{work}/cpu", c)
assert len(hg) == len(hc) == 4, (len(hg), len(hc))
print("    epoch   loss on " + device.ljust(10) + " loss on cpu    relative difference")
for a, b in zip(hg, hc):
    print(f"    {a['epoch']:5d}   {a['loss']:.6f}        {b['loss']:.6f}       {rel(a['loss'], b['loss']):.2e}")
first = rel(hg[0]["loss"], hc[0]["loss"])
final = rel(gm[("base", "final_loss")], cm[("base", "final_loss")])
print(f"    final_loss {gm[('base', 'final_loss')]:.6f} ({device}) vs {cm[('base', 'final_loss')]:.6f} (cpu): "
      f"relative {final:.2e} (tolerance 2e-2); first epoch {first:.2e} (tolerance 1e-2)")
assert first <= 1e-2, f"first epoch's loss differs by {first:.2e} > 1e-2"
assert final <= 2e-2, f"final_loss differs by {final:.2e} > 2e-2"
assert hc[-1]["loss"] < hc[0]["loss"] and hg[-1]["loss"] < hg[0]["loss"], "the loss did not fall"
PY
  ;;

views_on_gpu)
  # Augmented views made on the GPU (the CUDA kernels, next to the model) against the
  # same pretraining with its views made on the host (GYRUS_GPU_VIEWS=0) and on the CPU:
  # the same draws (seeds per view and operation), so the losses agree up to rounding.
  aug=(--set "base.data = corpus |> zscore() >> flip() >> rotate(p = 50%) >> gamma(0.7 .. 1.5) >> noise(sigma = 0.05)")
  run gpuviews "$device" "$here/pretrain.gy" "${aug[@]}"
  GYRUS_GPU_VIEWS=0 run hostviews "$device" "$here/pretrain.gy" "${aug[@]}"
  run cpuviews cpu "$here/pretrain.gy" "${aug[@]}"
  grep -q "views are made on the CPU" "$work/gpuviews.err" && fail "the GPU kernels did not run: $(grep -m1 'GPU kernels' "$work/gpuviews.err")"
  py "$work" "$device" <<'PY' || fail "views made on the GPU change the pretraining"
from cuda_checks import *
work, device = sys.argv[1], sys.argv[2]
g, gm = load_run(f"{work}/gpuviews.json", f"{work}/gpuviews", device)
h, hm = load_run(f"{work}/hostviews.json", f"{work}/hostviews", device)
c, cm = load_run(f"{work}/cpuviews.json", f"{work}/cpuviews", "cpu")
key = ("base", "final_loss")
for name, other in (("host views", hm), ("cpu", cm)):
    r = rel(gm[key], other[key])
    print(f"    final_loss with GPU views {gm[key]:.6f} vs {name} {other[key]:.6f}: relative {r:.2e} (tolerance 2e-2)")
    assert r <= 2e-2, f"final_loss differs from {name} by {r:.2e} > 2e-2"
PY
  ;;

bf16_trains)
  "$gyrus" plan "$here/pretrain.gy" --json > "$work/fp32-plan.json" || fail "gyrus plan"
  "$gyrus" plan "$here/pretrain.gy" --set base.precision=bf16 --json > "$work/bf16-plan.json" || fail "gyrus plan bf16"
  run bf16 "$device" "$here/pretrain.gy" --set base.precision=bf16
  py "$work" "$device" <<'PY' || fail "the bf16 pretraining"
from cuda_checks import *
work, device = sys.argv[1], sys.argv[2]
d, m = load_run(f"{work}/bf16.json", f"{work}/bf16", device)
fp32 = json.load(open(f"{work}/fp32-plan.json"))["stages"][0]["hash"]
assert d["stages"][0]["hash"] != fp32, "bf16 has the fp32 stage's hash (precision must be part of it)"
r = json.load(open(f"{work}/bf16/stages/{d['stages'][0]['hash']}/result.json"))
assert r.get("precision") == "bf16", f"result.json records precision {r.get('precision')}"
h = history(f"{work}/bf16", d)
losses = [x["loss"] for x in h]
print("    bf16 losses by epoch: " + " ".join(f"{x:.5f}" for x in losses))
assert len(losses) == 4 and all(math.isfinite(x) for x in losses), losses
assert losses[-1] < 0.8 * losses[0], f"bf16 did not train: {losses}"
PY
  if [ "$device" = cpu ]; then
    grep -q "bf16" "$work/bf16.err" && say "(on the CPU bf16 warns, as it should: $(grep -m1 bf16 "$work/bf16.err"))"
  fi
  ;;

probe_and_finetune)
  run eval "$device" "$here/evaluate.gy"
  py "$work" "$device" <<'PY' || fail "the probe and the fine-tuning"
from cuda_checks import *
work, device = sys.argv[1], sys.argv[2]
d, m = load_run(f"{work}/eval.json", f"{work}/eval", device)
assert [(s["name"], s["kind"]) for s in d["stages"]] == [("base", "pretrain"), ("base_lesion", "evaluate"),
                                                       ("base_age", "evaluate")], d["stages"]
for k in ("auroc", "auroc_random_encoder"):
    assert 0.0 <= m[("base_lesion", k)] <= 1.0, (k, m[("base_lesion", k)])
for k in ("mae", "mae_scratch"):
    assert 0.0 < m[("base_age", k)] < 200.0, (k, m[("base_age", k)])
assert -1.0 <= m[("base_age", "pearson_r")] <= 1.0, m[("base_age", "pearson_r")]
age = next(s["hash"] for s in d["stages"] if s["name"] == "base_age")
r = json.load(open(f"{work}/eval/stages/{age}/result.json"))
assert r.get("precision", "bf16") == "bf16", f"the fine-tuning recorded precision {r.get('precision')}"
ft = [x for x in history(f"{work}/eval", d, "base_age") if x["phase"] == "finetune"]
assert ft and all(math.isfinite(x["loss"]) for x in ft), ft[:3]
pred = json.load(open(f"{work}/eval/stages/{age}/predictions.json"))
assert pred["protocol"] == "finetune" and len(pred["repeats"]) == 2, (pred["protocol"], len(pred["repeats"]))
for (stage, name), v in sorted(m.items()):
    print(f"    {stage:12s} {name:28s} {v:.4f}")
PY
  ;;

resume)
  # Long enough that the kill lands mid-run on a GPU: 64 subjects (16 steps) an epoch.
  if [ "$device" = cpu ]; then sets=(--set base.epochs=5); epochs=5
  else sets=(--set corpus.subjects=64 --set base.epochs=40); epochs=40; fi
  store="$work/resume"
  start=$SECONDS
  "$gyrus" run "$here/pretrain.gy" --device "$device" "${threads[@]}" "${sets[@]}" --store "$store" \
    > /dev/null 2> "$work/killed.err" &
  pid=$!
  for _ in $(seq 1 6000); do  # up to 300 s
    compgen -G "$store/stages/*/checkpoint.pt" > /dev/null && break
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.05
  done
  kill -9 "$pid" 2> /dev/null
  wait "$pid" 2> /dev/null
  say "killed the first run after $((SECONDS - start)) s; its last lines:"
  tail -n 3 "$work/killed.err" | sed 's/^/    /'
  compgen -G "$store/stages/*/checkpoint.pt" > /dev/null || fail "no checkpoint.pt was written"
  if compgen -G "$store/stages/*/result.json" > /dev/null; then
    fail "the run finished before it could be killed (raise the epochs in this test)"
  fi
  run resume "$device" "$here/pretrain.gy" "${sets[@]}"
  grep -m1 "resuming from checkpoint.pt after epoch" "$work/resume.err" | sed 's/^/    /'
  py "$work" "$device" "$epochs" <<'PY' || fail "the resumed run"
from cuda_checks import *
work, device, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
d, m = load_run(f"{work}/resume.json", f"{work}/resume", device, statuses=("resumed",))
err = open(f"{work}/resume.err").read()
import re
at = re.search(r"resuming from checkpoint.pt after epoch (\d+)", err)
assert at, "no 'resuming from checkpoint.pt after epoch N' line"
assert 1 <= int(at.group(1)) < epochs, at.group(0)
h = history(f"{work}/resume", d)
assert [x["epoch"] for x in h] == list(range(1, epochs + 1)), [x["epoch"] for x in h]
r = json.load(open(f"{work}/resume/stages/{d['stages'][0]['hash']}/result.json"))
assert r["resumed"] is True, r
print(f"    resumed after epoch {at.group(1)} of {epochs}; final_loss {m[('base', 'final_loss')]:.6f}")
PY
  ;;

*) fail "unknown case (pretrain_matches_cpu, bf16_trains, probe_and_finetune, resume)" ;;
esac
say "PASS"
