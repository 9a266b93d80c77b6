#!/usr/bin/env bash
# `gyrus run --executor slurm` on a real Slurm cluster: a private one-node cluster on
# localhost (tests/slurm/cluster.sh: munged, slurmctld, slurmd, own ports and state),
# a small experiment submitted as job arrays into a store whose path is hostile to
# shells, one task killed (kill -9) mid-pretraining and resubmitted, and the results
# compared with a local `gyrus run` of the same file. Also: `gyrus runs ls` while tasks
# are queued and running, Ctrl-C leaving the jobs to Slurm, `--cancel`, and a hostile
# --partition refused by sbatch without running anything. The cluster is stopped on exit.
#
# Usage: slurm-test.sh GYRUS SOURCE_DIR WORK_DIR
# Exit 77 (ctest: skipped) without root or without Debian's slurmctld, slurmd,
# slurm-client and munge (scripts/install-deps.sh installs them).
set -euo pipefail
gyrus="$1"
root="$2"
work="$3"

skip() {
  echo "slurm-test: SKIPPED: $*"
  exit 77
}
fail() {
  echo "slurm-test: FAIL: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || skip "the test cluster's slurmd must run as root"
for p in munged slurmctld slurmd sbatch squeue scancel sinfo scontrol; do
  command -v "$p" > /dev/null || skip "no $p (apt-get install slurmctld slurmd slurm-client munge)"
done

rm -rf "$work"
mkdir -p "$work"
cd "$work"
cluster="$work/cluster"
cluster_sh="$root/tests/slurm/cluster.sh"
trap '"$cluster_sh" stop "$cluster"' EXIT
# A signal (ctest's timeout, Ctrl-C) still stops the cluster.
trap 'exit 143' TERM INT
# Own ports, away from a real cluster's 6817/6818 and from another run of this test.
export GYRUS_SLURM_PORT=$((20000 + (RANDOM % 10000) * 2))
t0=$(date +%s%N)
eval "$("$cluster_sh" start "$cluster")"
echo "slurm-test: cluster up in $(( ($(date +%s%N) - t0) / 1000000 )) ms (SLURM_CONF=$SLURM_CONF)"

# The pid of the `gyrus run-stage HASH` process running a stage ("" when none), from /proc.
stage_pid() {
  local p cmd
  for p in /proc/[0-9]*; do
    cmd="$(tr '\0' ' ' < "$p/cmdline" 2> /dev/null || true)"
    case "$cmd" in
      *" run-stage $1 "*) echo "${p#/proc/}"; return 0 ;;
    esac
  done
}

file="$root/tests/cli/data/jobs.gy"
# Long enough pretrainings to be caught running; the same for the local reference run.
sets=(--set a.epochs=60 --set b.epochs=60)

# The local reference, one stage after another.
"$gyrus" run "$file" "${sets[@]}" --threads 1 --store "$work/local" --json > local.json 2> local.err \
  || { cat local.err; fail "local run"; }

# A store path no shell may interpret: substitutions, quotes, spaces, a newline, a percent.
store="$work/st ore \$(touch pwned) \`touch pwned2\` 'q\"
nl %A"
hash_a="$("$gyrus" plan "$file" "${sets[@]}" --json | python3 -c '
import json, sys
print(next(s["hash"] for s in json.load(sys.stdin)["stages"] if s["name"] == "a"))')"

t0=$(date +%s%N)
timeout 150 "$gyrus" run "$file" "${sets[@]}" --threads 1 --executor slurm --store "$store" --max-running 2 --json \
  > slurm.json 2> slurm.err &
run_pid=$!

# Once pretraining a is running and has written a checkpoint: `gyrus runs ls` shows the
# Slurm tasks, then its run-stage process is killed.
pid=""
for _ in $(seq 1 600); do
  if [ -e "$store/stages/$hash_a/checkpoint.pt" ]; then
    pid="$(stage_pid "$hash_a")"
    [ -n "$pid" ] && break
  fi
  kill -0 "$run_pid" 2> /dev/null || break
  sleep 0.1
done
[ -n "$pid" ] || { cat slurm.err; fail "pretraining a never ran under Slurm with a checkpoint"; }
"$gyrus" runs ls --store "$store" > ls.txt || fail "runs ls"
cat ls.txt
grep -Eq "^${hash_a:0:12} +a +pretrain +running .*slurm:[0-9]+_[0-9]+" ls.txt || fail "runs ls does not show a running in Slurm"
grep -Eq " (queued|running) .*slurm:[0-9]+_[0-9]+" <(grep "evaluate" ls.txt) || fail "runs ls does not show the probes queued"
kill -9 "$pid"
echo "slurm-test: killed run-stage of a (pid $pid) mid-pretraining"
wait "$run_pid" || { cat slurm.err; fail "the Slurm run exited $?"; }
echo "slurm-test: Slurm run (with one retry) in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
cat slurm.err

grep -q "\[a\] Slurm task [0-9_]* ended FAILED, signal 9.*; resubmitting (retry 1 of 2)" slurm.err \
  || fail "no resubmission of the killed task"
grep -q "\[a\] pretrain a ([0-9a-f]*) queued as Slurm task [0-9_]*, attempt 2" slurm.err || fail "no second attempt of a"
# The logs and scripts are in the store; nothing in the names ran.
ls "$store/slurm/"*.log > /dev/null || fail "no task logs in the store"
ls "$store/slurm/"*.sh > /dev/null || fail "no batch scripts in the store"
for p in pwned pwned2; do
  [ ! -e "$work/$p" ] && [ ! -e "$cluster/$p" ] && [ ! -e "/$p" ] || fail "a store path ran a command ($p exists)"
done

# The same stages, statuses (a resumed) and metrics as the local run.
python3 - local.json slurm.json <<'PY' || fail "the Slurm results differ from the local run's"
import json, sys
local, slurm = (json.load(open(p)) for p in sys.argv[1:3])
status = {s["name"]: s["status"] for s in slurm["stages"]}
assert status == {"a": "resumed", "b": "ran", "a_lesion": "ran", "b_lesion": "ran"}, status
assert [s["name"] for s in local["stages"]] == [s["name"] for s in slurm["stages"]]
lm = {(m["stage"], m["name"]): m["value"] for m in local["metrics"]}
sm = {(m["stage"], m["name"]): m["value"] for m in slurm["metrics"]}
assert lm.keys() == sm.keys(), (lm.keys(), sm.keys())
for k in lm:
    a, b = lm[k], sm[k]
    assert (a is None and b is None) or abs(a - b) <= 1e-6 * max(1.0, abs(a)), (k, a, b)
print(f"slurm-test: {len(lm)} metrics equal to the local run's")
PY
results=("$store"/stages/*/result.json)
n=${#results[@]}
[ "$n" -eq 4 ] || fail "expected 4 results in the store, found $n"

# A rerun submits nothing.
timeout 150 "$gyrus" run "$file" "${sets[@]}" --threads 1 --executor slurm --store "$store" --json > again.json 2> again.err \
  || { cat again.err; fail "rerun"; }
grep -q "queued as" again.err && fail "the rerun submitted stages again"
grep -c '"status": "cached"' again.json | grep -qx 4 || fail "the rerun did not reuse every stage"

# Ctrl-C while waiting leaves the tasks to Slurm; runs ls shows them; --cancel cancels them.
timeout 60 "$gyrus" run "$file" --set a.epochs=200 --set b.epochs=200 --threads 1 --executor slurm --store "$work/cancel" \
  > cancel.out 2> cancel.err &
run_pid=$!
for _ in $(seq 1 300); do
  grep -q "running as Slurm task" cancel.err && break
  sleep 0.1
done
kill -INT "$run_pid"
rc=0
wait "$run_pid" || rc=$?
[ "$rc" -eq 1 ] || { cat cancel.err; fail "Ctrl-C: exit $rc, expected 1"; }
grep -q "the queued and running stages stay in Slurm" cancel.err || fail "Ctrl-C: no word on the jobs left"
"$gyrus" runs ls --store "$work/cancel" > ls2.txt
grep -Eq " running .*slurm:" ls2.txt && grep -Eq " queued .*slurm:" ls2.txt || { cat ls2.txt; fail "runs ls after Ctrl-C"; }
timeout 60 "$gyrus" run "$file" --set a.epochs=200 --set b.epochs=200 --threads 1 --executor slurm --store "$work/cancel" \
  --cancel > cancel2.out 2> cancel2.err || { cat cancel2.err; fail "--cancel"; }
grep -q "cancelled 4 Slurm tasks" cancel2.err || { cat cancel2.err; fail "--cancel did not cancel the 4 tasks"; }
# Cancelled tasks pass through COMPLETING (still shown as running) while their processes end.
for _ in $(seq 1 200); do
  "$gyrus" runs ls --store "$work/cancel" > ls3.txt
  grep -Eq " (queued|running) " ls3.txt || break
  sleep 0.1
done
grep -Eq " (queued|running) " ls3.txt && { cat ls3.txt; fail "runs ls still shows tasks in Slurm after --cancel"; }
[ -z "$(squeue -h -t pending,running)" ] || fail "tasks left after --cancel: $(squeue -h)"

# Tasks that keep failing (no runtime module, passed to the tasks in the environment):
# each stage is tried 1 + --retries times, then reported failed with the end of its log;
# the probes are skipped and their queued tasks cancelled; the exit code is run-stage's.
rc=0
GYRUS_RUNTIME=/nonexistent/libgyrus_runtime.so timeout 60 "$gyrus" run "$file" --executor slurm --retries 1 \
  --store "$work/failing" --json > fail.json 2> fail.err || rc=$?
[ "$rc" -eq 2 ] || { cat fail.err; fail "failing tasks: exit $rc, expected 2 (run-stage's, an installation problem)"; }
grep -q "\[a\] Slurm task [0-9_]* ended FAILED, exit code 2; resubmitting (retry 1 of 1)" fail.err \
  || { cat fail.err; fail "failing tasks: no retry"; }
grep -q "stage 'a' failed: Slurm task [0-9_]* ended FAILED, exit code 2 after 2 attempts; its log, .*, ends:" fail.err \
  || { cat fail.err; fail "failing tasks: no final failure with the log"; }
grep -q "/nonexistent/libgyrus_runtime.so" fail.err || { cat fail.err; fail "failing tasks: the log's end is not shown"; }
python3 - fail.json <<'PY' || fail "failing tasks: statuses"
import json, sys
status = {s["name"]: s["status"] for s in json.load(open(sys.argv[1]))["stages"]}
assert status == {"a": "failed", "b": "failed", "a_lesion": "skipped", "b_lesion": "skipped"}, status
PY
[ -z "$(squeue -h -t pending,running)" ] || fail "tasks left after the failures: $(squeue -h)"

# A hostile --partition reaches sbatch as one argument: refused, nothing run.
rc=0
timeout 60 "$gyrus" run "$file" --executor slurm --store "$work/partition" --partition 'debug;touch pwned3' \
  > part.out 2> part.err || rc=$?
[ "$rc" -eq 1 ] || { cat part.err; fail "hostile partition: exit $rc, expected 1"; }
grep -q "sbatch refused it" part.out part.err || { cat part.out part.err; fail "hostile partition: no sbatch error"; }
[ ! -e "$work/pwned3" ] || fail "--partition ran a command"

# Data-parallel pretraining through Slurm (--ranks 2): every task asks for --ntasks=2, the
# pretraining's run-stage starts its two ranks with srun (each takes SLURM_PROCID), and
# the result equals one local process's within float rounding; no rank file is left.
ranks_file="$root/tests/cli/data/ranks.gy"
timeout 120 "$gyrus" run "$ranks_file" --executor slurm --ranks 2 --store "$work/ranks" --json \
  > ranks.json 2> ranks.err || { cat ranks.err "$work"/ranks/slurm/*.log; fail "--ranks 2 through Slurm"; }
"$gyrus" run "$ranks_file" --store "$work/ranks-local" --threads 1 --json > ranks-local.json 2> /dev/null \
  || fail "--ranks 2: the local reference run"
grep -q "data-parallel: 2 ranks (srun), batch 4 = 2 x 2" "$work"/ranks/slurm/*.log \
  || { cat "$work"/ranks/slurm/*.log; fail "--ranks 2 through Slurm: no srun launch in the task's log"; }
grep -q "rank 0 of 2 (gloo)" "$work"/ranks/slurm/*.log || fail "--ranks 2 through Slurm: rank 0 did not report"
python3 - ranks.json ranks-local.json <<'PY' || fail "--ranks 2 through Slurm: a final loss that differs from one process's"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
la, lb = a["metrics"][0]["value"], b["metrics"][0]["value"]
assert a["stages"][0]["hash"] == b["stages"][0]["hash"]
assert abs(la - lb) <= 1e-5 * abs(lb), (la, lb)
PY
! ls -d "$work"/ranks/stages/*/ranks-* > /dev/null 2>&1 || fail "--ranks 2 through Slurm: the rendezvous directory stayed"
# An evaluation of that pretraining under --ranks 2 is one process: its array asks for one
# Slurm task and its script starts no ranks (only the pretraining's script did).
{ cat "$ranks_file"; printf 'evaluate base on corpus.age (shots = 3, repeats = 1)\n'; } > ranks-eval.gy
timeout 120 "$gyrus" run ranks-eval.gy --executor slurm --ranks 2 --store "$work/ranks" > ranks-eval.out 2> ranks-eval.err \
  || { cat ranks-eval.err "$work"/ranks/slurm/*.log; fail "--ranks 2 through Slurm: an evaluation"; }
[ "$(grep -l -- '--ranks 2' "$work"/ranks/slurm/*.sh | wc -l)" = 1 ] \
  || { grep -c -- '--ranks' "$work"/ranks/slurm/*.sh; fail "--ranks 2 through Slurm: an evaluation's script starts ranks"; }

echo "slurm-test: OK"
