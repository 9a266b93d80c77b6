#!/usr/bin/env bash
# End-to-end: runs examples/quickstart.gy, shrunk with --set, through the real binary:
# a first run computes every stage, a second reuses them, a run killed mid-pretraining
# resumes from its checkpoint, and user errors exit 1 with diagnostics.
set -euo pipefail
gyrus="$1"
root="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$root"

small=(--set corpus.subjects=16 --set clinic.subjects=32 --set base.epochs=2 --set base.batch=4
       --set base_lesion.shots=8 --set base_lesion.repeats=2
       --set base_age.shots=8 --set base_age.repeats=2 --threads 2)

fail() { echo "e2e: FAIL: $*" >&2; exit 1; }

# jq-free JSON checks with python3 (present on the base image).
json_check() {
  python3 - "$1" "$2" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
want = sys.argv[2]
statuses = [s["status"] for s in data["stages"]]
assert all(s == want for s in statuses), f"statuses {statuses}, want all {want}"
assert [s["kind"] for s in data["stages"]] == ["pretrain", "evaluate", "evaluate"], data["stages"]
assert all(len(s["hash"]) == 64 for s in data["stages"])
m = {(x["stage"], x["name"]): x["value"] for x in data["metrics"]}
auroc = m[("base_lesion", "auroc")]
assert 0.0 <= auroc <= 1.0, auroc
assert ("base_lesion", "auroc_random_encoder") in m
assert m[("base", "final_loss")] > 0
assert m[("base_age", "mae")] > 0 and -1 <= m[("base_age", "pearson_r")] <= 1
print(f"auroc {auroc:.4f}")
PY
}

echo "e2e: first run"
"$gyrus" run examples/quickstart.gy "${small[@]}" --store "$tmp/store" --json > "$tmp/first.json" 2> "$tmp/first.err" \
  || { cat "$tmp/first.err"; fail "first run exited $?"; }
json_check "$tmp/first.json" ran || fail "first run JSON"
grep -q "epoch 2/2" "$tmp/first.err" || fail "no progress lines"

echo "e2e: second run reuses every stage"
"$gyrus" run examples/quickstart.gy "${small[@]}" --store "$tmp/store" --json > "$tmp/second.json" 2>/dev/null \
  || fail "second run"
json_check "$tmp/second.json" cached || fail "second run JSON"
python3 - "$tmp/first.json" "$tmp/second.json" <<'PY' || fail "cached metrics differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["metrics"] == b["metrics"], (a["metrics"], b["metrics"])
PY

echo "e2e: a worker runs each stored stage (plan --store, run-stage) with the same results as run"
"$gyrus" plan examples/quickstart.gy "${small[@]:0:${#small[@]}-2}" --store "$tmp/worker" --json > "$tmp/plan.json" \
  || fail "plan --store"
[ ! -e "$tmp/worker/stages/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stages"][0]["hash"])' "$tmp/plan.json")/result.json" ] \
  || fail "plan --store ran a stage"
last=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stages"][-1]["hash"])' "$tmp/plan.json")
code=0; "$gyrus" run-stage --store "$tmp/worker" "${last:0:12}" --threads 2 > /dev/null 2> "$tmp/early.err" || code=$?
[ "$code" = 1 ] && grep -q "needs stage .* to finish first" "$tmp/early.err" || fail "a stage before its dependency: exit $code"
code=0; "$gyrus" run-stage --store "$tmp/worker" 0000000000 > /dev/null 2> "$tmp/none.err" || code=$?
[ "$code" = 1 ] && grep -q "has no stage 0000000000" "$tmp/none.err" || fail "an unknown stage: exit $code"
for hash in $(python3 -c 'import json,sys; print(" ".join(s["hash"] for s in json.load(open(sys.argv[1]))["stages"]))' "$tmp/plan.json"); do
  "$gyrus" run-stage --store "$tmp/worker" "$hash" --threads 2 --device cpu --json > "$tmp/stage-$hash.json" 2> "$tmp/stage.err" \
    || { cat "$tmp/stage.err"; fail "run-stage $hash"; }
done
python3 - "$tmp/first.json" "$tmp/plan.json" "$tmp/worker" "$tmp" <<'PY' || fail "run-stage results differ from run's"
import json, sys
first, plan, worker, tmp = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4]
assert [s["hash"] for s in plan["stages"]] == [s["hash"] for s in first["stages"]], "plan and run disagree on hashes"
for s in first["stages"]:
    mine = {m["name"]: m["value"] for m in first["metrics"] if m["stage"] == s["name"]}
    stored = json.load(open(f"{worker}/stages/{s['hash']}/result.json"))
    theirs = {m["name"]: m["value"] for m in stored["metrics"]}
    assert mine == theirs, (s["name"], mine, theirs)
    out = json.load(open(f"{tmp}/stage-{s['hash']}.json"))
    assert out["stages"][0]["status"] == "ran" and out["ok"], out
    assert out["stages"][0]["device"] == "cpu" and stored["device"] == "cpu", (out, stored)
    assert stored["precision"] == "fp32" and stored["device_name"] == "", stored
    assert stored["runtime"].startswith("LibTorch 2.11.0"), stored
PY

echo "e2e: human output has a results table"
"$gyrus" run examples/quickstart.gy "${small[@]}" --store "$tmp/store" > "$tmp/table.txt" 2>/dev/null || fail "table run"
grep -q "auroc" "$tmp/table.txt" || fail "no auroc in the table"

echo "e2e: the quickstart with a ViT encoder is a one-line change (here a --set)"
"$gyrus" run examples/quickstart.gy "${small[@]}" --set 'base.encoder=vit(patch = 8, dim = 48, depth = 2, heads = 4)' \
  --store "$tmp/store" --json > "$tmp/vit.json" 2> "$tmp/vit.err" || { cat "$tmp/vit.err"; fail "ViT run"; }
python3 - "$tmp/vit.json" "$tmp/first.json" <<'PY' || fail "ViT run JSON"
import json, sys
vit, unet = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert [s["status"] for s in vit["stages"]] == ["ran", "ran", "ran"], vit["stages"]
assert vit["stages"][0]["hash"] != unet["stages"][0]["hash"], "the encoder is part of the stage"
m = {(x["stage"], x["name"]): x["value"] for x in vit["metrics"]}
assert 0 <= m[("base_lesion", "auroc")] <= 1, m
PY

echo "e2e: a stage locked by another process is not run twice"
hash="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stages"][0]["hash"])' "$tmp/first.json")"
mkdir -p "$tmp/locked/stages/$hash"
flock "$tmp/locked/stages/$hash/lock" sleep 30 &
holder=$!
sleep 0.5
set +e
"$gyrus" run examples/quickstart.gy "${small[@]}" --store "$tmp/locked" > /dev/null 2> "$tmp/locked.err"; code=$?
set -e
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
[ "$code" = 1 ] || fail "a locked stage: exit $code"
grep -q "is being run by another gyrus process" "$tmp/locked.err" || fail "no lock message: $(cat "$tmp/locked.err")"

echo "e2e: a stored NaN metric (written as null) is read back, not a crash"
python3 - "$tmp/store" <<'PY' || fail "could not edit a result.json"
import glob, json, sys
path = next(p for p in glob.glob(sys.argv[1] + "/stages/*/result.json") if json.load(open(p))["kind"] == "evaluate")
d = json.load(open(path))
d["metrics"][0]["value"] = None
json.dump(d, open(path, "w"))
PY
"$gyrus" run examples/quickstart.gy "${small[@]}" --store "$tmp/store" --json > "$tmp/nan.json" 2> "$tmp/nan.err" \
  || { cat "$tmp/nan.err"; fail "a null metric in the store broke the run"; }

echo "e2e: a run killed mid-pretraining resumes"
long=("${small[@]}" --set base.epochs=20)
"$gyrus" run examples/quickstart.gy "${long[@]}" --store "$tmp/resume" > /dev/null 2> "$tmp/killed.err" &
pid=$!
for _ in $(seq 1 600); do
  if compgen -G "$tmp/resume/stages/*/checkpoint.pt" > /dev/null; then break; fi
  sleep 0.1
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
compgen -G "$tmp/resume/stages/*/checkpoint.pt" > /dev/null || fail "no checkpoint was written"
"$gyrus" run examples/quickstart.gy "${long[@]}" --store "$tmp/resume" --json > "$tmp/resumed.json" 2> "$tmp/resumed.err" \
  || { cat "$tmp/resumed.err"; fail "resumed run"; }
python3 - "$tmp/resumed.json" <<'PY' || fail "resume status"
import json, sys
d = json.load(open(sys.argv[1]))
st = {s["kind"]: s["status"] for s in d["stages"]}
assert st["pretrain"] == "resumed", st
print("pretrain status after kill:", st["pretrain"])
PY

echo "e2e: a sweep runs its shared pretraining once (augmented views, hybrid objective)"
"$gyrus" run tests/e2e/sweep.gy --threads 2 --store "$tmp/sweep" --json > "$tmp/sweep.json" 2> "$tmp/sweep.err" \
  || { cat "$tmp/sweep.err"; fail "sweep run"; }
python3 - "$tmp/sweep.json" <<'PY' || fail "sweep JSON"
import json, sys
d = json.load(open(sys.argv[1]))
stages = d["stages"]
assert [s["kind"] for s in stages] == ["pretrain", "evaluate", "evaluate"], stages
assert all(s["status"] == "ran" for s in stages), stages
assert stages[0]["points"] == [1, 2], stages[0]
assert [s["name"] for s in stages[1:]] == ["base_lesion[1]", "base_lesion[2]"], stages
assert d["points"] == ["base_lesion.shots = 4", "base_lesion.shots = 8"], d["points"]
PY
[ "$(grep -c '\[base\] epoch' "$tmp/sweep.err")" = 2 ] || fail "the shared pretraining did not run exactly once"

echo "e2e: a multi-stage recipe starts its second stage from the first's encoder"
"$gyrus" run tests/e2e/recipe.gy --threads 2 --store "$tmp/recipe" --json > "$tmp/recipe.json" 2> "$tmp/recipe.err" \
  || { cat "$tmp/recipe.err"; fail "recipe run"; }
grep -q "\[second\] starting from the encoder of 'first'" "$tmp/recipe.err" || fail "the second stage did not start from the first"
python3 - "$tmp/recipe.json" <<'PY' || fail "recipe JSON"
import json, sys
d = json.load(open(sys.argv[1]))
assert [(s["name"], s["status"]) for s in d["stages"]] == [("first", "ran"), ("second", "ran"), ("second_lesion", "ran")], d["stages"]
PY

echo "e2e: the quickstart runs on gyrus synth folders through NIfTI, tested out-of-domain on site b"
mkdir -p "$tmp/folders"
cp examples/folders.gy "$tmp/folders/"
"$gyrus" synth --out "$tmp/folders/synth/fomo60k" --layout fomo60k --subjects 12 --size 32 > /dev/null || fail "synth fomo60k"
"$gyrus" synth --out "$tmp/folders/synth/task1" --layout fomo25-task1 --subjects 24 --size 32 --seed 2 > /dev/null \
  || fail "synth task1"
"$gyrus" run "$tmp/folders/folders.gy" --set base.epochs=1 --set base.batch=4 --set base_infarct.shots=6 \
  --set base_infarct.repeats=2 --set 'base_infarct.test=site("b")' --threads 2 --store "$tmp/folders/store" --json \
  --volume-cache "$tmp/vcache" --loader-memory 256KiB > "$tmp/folders.json" 2> "$tmp/folders.err" \
  || { cat "$tmp/folders.err"; fail "folder run"; }
grep -q "\[base\] streaming [0-9]* preprocessed volumes from $tmp/vcache" "$tmp/folders.err" \
  || fail "the pretraining was not streamed: $(cat "$tmp/folders.err")"
grep -q "\[base\] volume cache: 0 volumes reused, [1-9][0-9]* written" "$tmp/folders.err" || fail "no volume cache line"
python3 - "$tmp/folders.json" <<'PY' || fail "folder run JSON"
import json, sys
d = json.load(open(sys.argv[1]))
assert [s["status"] for s in d["stages"]] == ["ran", "ran"], d["stages"]
m = {(x["stage"], x["name"]): x["value"] for x in d["metrics"]}
assert 0 <= m[("base_infarct", "auroc")] <= 1, m
PY
# Another store, the same volume cache: every preprocessed volume is reused.
"$gyrus" run "$tmp/folders/folders.gy" --set base.epochs=1 --set base.batch=4 --set base_infarct.shots=6 \
  --set base_infarct.repeats=2 --set 'base_infarct.test=site("b")' --threads 2 --store "$tmp/folders/store2" \
  --volume-cache "$tmp/vcache" > /dev/null 2> "$tmp/folders2.err" || { cat "$tmp/folders2.err"; fail "cached folder run"; }
grep -q "\[base\] volume cache: [1-9][0-9]* volumes reused, 0 written" "$tmp/folders2.err" \
  || fail "the volume cache was not reused: $(cat "$tmp/folders2.err")"
"$gyrus" run "$tmp/folders/folders.gy" --loader-memory 12parsecs > /dev/null 2> "$tmp/size.err" && fail "a bad size was accepted"
grep -q "is not a size" "$tmp/size.err" || fail "no message for a bad size: $(cat "$tmp/size.err")"
# Changing the data changes the stages that read them.
"$gyrus" synth --out "$tmp/folders/synth/task1" --layout fomo25-task1 --subjects 24 --size 32 --seed 3 --force > /dev/null
"$gyrus" plan "$tmp/folders/folders.gy" --set base.epochs=1 --set base.batch=4 --set base_infarct.shots=6 \
  --set base_infarct.repeats=2 --set 'base_infarct.test=site("b")' > "$tmp/plan2.txt" || fail "plan after new data"
grep -q "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stages"][1]["hash"][:16])' "$tmp/folders.json")" "$tmp/plan2.txt" \
  && fail "the evaluation's hash did not change with its data"
grep -q "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stages"][0]["hash"][:16])' "$tmp/folders.json")" "$tmp/plan2.txt" \
  || fail "the pretraining's hash changed although its data did not"

echo "e2e: user errors exit 1 with a located diagnostic"
printf 'dataset corpus = synthetic(subjects = 8 size = 32^3)\n' > "$tmp/bad.gy"
set +e
"$gyrus" check "$tmp/bad.gy" 2> "$tmp/bad.err"; code=$?
set -e
[ "$code" = 1 ] || fail "check on a syntax error exited $code"
grep -q "bad.gy:1:41: error:" "$tmp/bad.err" || fail "no located diagnostic: $(cat "$tmp/bad.err")"
set +e
"$gyrus" run examples/quickstart.gy --set base.epochs=0 --store "$tmp/store" 2> "$tmp/range.err"; code=$?
set -e
[ "$code" = 1 ] || fail "run with a bad --set exited $code"
grep -q "value-range" "$tmp/range.err" || fail "no value-range diagnostic"
set +e
"$gyrus" run examples/quickstart.gy --device gpu --store "$tmp/store" 2> "$tmp/device.err"; code=$?
set -e
[ "$code" = 1 ] || fail "run with --device gpu exited $code"
grep -q "'gpu' is not a device: use auto, cpu, cuda or cuda:N" "$tmp/device.err" || fail "no device message: $(cat "$tmp/device.err")"
echo "e2e: 12 passed, 0 failed"
