#!/usr/bin/env bash
# Proves gyrus's CUDA path on a GPU host in one command (docs/gpu.md). Runs from the
# repository root, with the bundle that scripts/gpu-pack.sh made on the build machine:
#
#   bash scripts/gpu-check.sh [--cpu] [--bundle DIR] [--out DIR] [--budget SECONDS] [--runtime-tests]
#
# Steps (each delimited, timed, PASS/FAIL/SKIP/TIMEOUT; a failing step does not stop
# the others; the exit status is 1 when any required step did not pass):
#   1 environment     nvidia-smi, the host's python3/torch, glibc, the bundle
#   2 libraries       LD_LIBRARY_PATH (bundle lib/, the host's torch/lib and nvidia-*
#                     lib folders), and ldd: nothing unresolved
#   3 cuda tests      ctest -L cuda (tests/cuda, configured standalone: no compiler)
#   4 bench           gyrus bench train --device cuda --model unet_b (96^3, batch 2) in
#                     bf16, falling back to fp32; then fp32 for comparison, time allowing
#   5 quickstart      examples/quickstart.gy on the GPU: stage times and metrics
#   6 runtime tests   the LibTorch test binary against the host's LibTorch (time allowing)
#   7 GPU kernels     the kernel IR's CUDA back end against the interpreter (time allowing)
#   8 bench augment   the FOMO25 preset's views by the CUDA kernels, patches/s (time allowing)
# --cpu (also --dry-run): the same steps on a machine without a GPU, on the CPU with tiny
#   settings and 2 threads: a check of this script, not of CUDA.
# --budget: seconds for the whole check (default 450: the device tool allows 600 a command).
# --out: where the log, summary.md and the JSON outputs go (default: $OUT when the device
#   tool set it, else a temporary folder).
# Environment: GYRUS_GPU_PYTHON (a python with torch; default python3, else the LibTorch
#   environment's), GYRUS_GPU_STDCXX=bundle|host (which libstdc++; default: the host's when
#   it has what the bundle needs).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 2
mode=gpu
bundle="$root/gpu-bundle"
outdir="${OUT:-}"
budget=450
runtime_tests=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle|--out|--budget)
      [ $# -ge 2 ] || { echo "$(basename "$0"): $1 needs a value" >&2; exit 2; } ;;
  esac
  case "$1" in
    --cpu|--dry-run) mode=cpu; shift ;;
    --bundle) bundle="$(cd "$2" && pwd)"; shift 2 ;;
    --out) outdir="$2"; shift 2 ;;
    --budget) budget="$2"; shift 2 ;;
    --runtime-tests) runtime_tests=yes; shift ;;
    --no-runtime-tests) runtime_tests=no; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
tmp="$(mktemp -d "${TMPDIR:-/tmp}/gyrus-gpu-check.XXXXXX")"
[ -n "$outdir" ] || outdir="$tmp/out"
mkdir -p "$outdir"
log="$outdir/gpu-check.log"
: > "$log"
exec > >(tee -a "$log") 2>&1
tee_pid=$!
cleanup() {
  rm -rf "$tmp"
  exec >&- 2>&-
  wait "$tee_pid" 2> /dev/null
}
trap cleanup EXIT

t0=$SECONDS
deadline=$((t0 + budget))
rule() { printf '%s\n' "======================================================================"; }
now_utc() { date -u '+%Y-%m-%d %H:%M:%S UTC'; }

if [ "$mode" = gpu ]; then dev=cuda; else dev=cpu; fi

# ---------------------------------------------------------------- the step runner
names=(); results=(); seconds=(); notes=()
step_note=""
step_deadline=$deadline
# left: seconds this step may still use (its own limit and the whole budget)
left() { local l=$((step_deadline - SECONDS)); [ "$l" -gt 0 ] && echo "$l" || echo 1; }
# tmo CMD...: CMD under the step's time limit (exit 124 when it runs out)
tmo() { timeout -k 10 "$(left)" "$@"; }
# step TITLE REQUIRED MAX_SECONDS MIN_SECONDS FUNCTION: runs FUNCTION (0 pass, 77 skip,
# 124 timeout, else fail) unless fewer than MIN_SECONDS of the budget are left.
step() {
  local title="$1" required="$2" max="$3" min="$4" fn="$5" rc start result
  local n=$((${#names[@]} + 1))
  rule
  echo "== gpu-check step $n: $title    ($(now_utc), $((SECONDS - t0)) s in)"
  rule
  step_note=""
  start=$SECONDS
  if [ $((deadline - SECONDS)) -lt "$min" ]; then
    rc=77
    step_note="not run: $((deadline - SECONDS)) s of the ${budget} s budget left, it needs ${min}"
    echo "$step_note"
  else
    step_deadline=$((SECONDS + max))
    [ "$step_deadline" -gt "$deadline" ] && step_deadline=$deadline
    "$fn"
    rc=$?
    step_deadline=$deadline
  fi
  case "$rc" in
    0) result=PASS ;;
    77) result=SKIP ;;
    124|137) result=TIMEOUT ;;
    *) result=FAIL ;;
  esac
  if [ "$required" = 1 ] && [ "$result" != PASS ]; then failed=1; fi
  [ "$required" = 1 ] || [ "$result" = PASS ] || step_note="${step_note:+$step_note; }optional"
  names+=("$title"); results+=("$result"); seconds+=($((SECONDS - start))); notes+=("$step_note")
  echo "-- step $n: $result in $((SECONDS - start)) s${step_note:+: $step_note}"
  echo
}
failed=0

# ---------------------------------------------------------------- 1 environment
python=""
declare -A torchinfo=()
env_step() {
  local rc=0
  echo "date:      $(now_utc)"
  echo "host:      $(hostname) ($(uname -srm))"
  echo "glibc:     $(getconf GNU_LIBC_VERSION 2> /dev/null || echo unknown)"
  echo "cores:     $(nproc)"
  echo "mode:      $mode (device $dev)"
  echo "repo:      $root ($(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo 'no git'))"
  echo
  if command -v nvidia-smi > /dev/null 2>&1; then
    nvidia-smi --query-gpu=index,name,memory.total,driver_version,compute_cap,clocks.max.sm --format=csv 2>&1
    nvidia-smi 2>&1 | sed -n '1,12p'
  else
    echo "nvidia-smi: not found"
  fi
  echo
  local p
  for p in "${GYRUS_GPU_PYTHON:-}" python3 "${GYRUS_TORCH_VENV:-$HOME/.cache/gyrus/torch-2.11.0}/bin/python"; do
    [ -n "$p" ] && command -v "$p" > /dev/null 2>&1 || continue
    local info
    info="$("$p" - 2> "$tmp/python.err" <<'PY'
import os, torch
print("dir=" + os.path.dirname(torch.__file__))
print("version=" + torch.__version__)
print("cuda=" + str(torch.version.cuda))
print("cudnn=" + str(torch.backends.cudnn.version()))
ok = torch.cuda.is_available()
print("available=" + ("yes" if ok else "no"))
print("gpu=" + (torch.cuda.get_device_name(0) if ok else ""))
print("capability=" + (".".join(map(str, torch.cuda.get_device_capability(0))) if ok else ""))
PY
)" || continue
    python="$(command -v "$p")"
    while IFS='=' read -r k v; do torchinfo[$k]="$v"; done <<< "$info"
    break
  done
  if [ -z "$python" ]; then
    echo "python: no python3 with torch (set GYRUS_GPU_PYTHON)"; cat "$tmp/python.err" 2> /dev/null
    step_note="no python with torch"
    return 1
  fi
  echo "python:    $python ($("$python" --version 2>&1))"
  echo "torch:     ${torchinfo[version]} (CUDA ${torchinfo[cuda]}, cuDNN ${torchinfo[cudnn]}) in ${torchinfo[dir]}"
  echo "torch GPU: ${torchinfo[available]}${torchinfo[gpu]:+ ${torchinfo[gpu]}}${torchinfo[capability]:+ (sm ${torchinfo[capability]})}"
  case "${torchinfo[version]}" in
    2.11.0*) ;;
    *) echo "WARNING: gyrus is built against torch 2.11.0; this host has ${torchinfo[version]}"; rc=1 ;;
  esac
  echo
  if [ -f "$bundle/BUNDLE.txt" ]; then
    sed -n '1,8p' "$bundle/BUNDLE.txt"
  else
    echo "no bundle at $bundle: run scripts/gpu-pack.sh on the build machine and carry gpu-bundle"
    step_note="no bundle"
    return 1
  fi
  step_note="torch ${torchinfo[version]}; GPU ${torchinfo[gpu]:-none}"
  if [ "$mode" = gpu ] && [ "${torchinfo[available]}" != yes ]; then
    echo "torch sees no usable GPU: the CUDA steps will fail"
    step_note="torch sees no GPU"
    rc=1
  fi
  return $rc
}

# ---------------------------------------------------------------- 2 libraries
ldp=""
libs_step() {
  [ -n "$python" ] && [ -d "$bundle/bin" ] || { step_note="no python or no bundle"; return 1; }
  local need_glibc="" need_glibcxx="" need_glibc_stdcxx="" rc=0
  if [ -f "$bundle/needs.env" ]; then
    need_glibc="$(sed -n 's/.*\bGLIBC=\([0-9.]*\).*/\1/p' "$bundle/needs.env")"
    need_glibc_stdcxx="$(sed -n 's/.*GLIBC_STDCXX=\([0-9.]*\).*/\1/p' "$bundle/needs.env")"
    need_glibcxx="$(sed -n 's/.*GLIBCXX=\([0-9.]*\).*/\1/p' "$bundle/needs.env")"
  fi
  local have_glibc
  have_glibc="$(getconf GNU_LIBC_VERSION 2> /dev/null | awk '{print $2}')"
  older() { [ -n "$1" ] && [ -n "$2" ] && [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$1" ]; }
  if older "$have_glibc" "$need_glibc"; then
    echo "glibc $have_glibc here, the bundle needs $need_glibc: build on an older system or build here"
    rc=1
  fi
  # libstdc++: the host's when it defines what the bundle needs, else the bundle's.
  local host_stdcxx use_stdcxx="${GYRUS_GPU_STDCXX:-}"
  host_stdcxx="$(ldconfig -p 2> /dev/null | awk '$1 == "libstdc++.so.6" && /x86-64/ {print $NF; exit}')"
  [ -n "$host_stdcxx" ] || host_stdcxx="$(ls /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib64/libstdc++.so.6 2> /dev/null | head -1)"
  local has=lacks
  [ -n "$host_stdcxx" ] && grep -qa "GLIBCXX_${need_glibcxx:-3.4.30}" "$host_stdcxx" && has=has
  if [ -z "$use_stdcxx" ]; then
    if [ "$has" = has ]; then use_stdcxx=host; else use_stdcxx=bundle; fi
  fi
  echo "libstdc++: the host's (${host_stdcxx:-none found}) $has GLIBCXX_${need_glibcxx:-3.4.30}: using the $use_stdcxx's${GYRUS_GPU_STDCXX:+ (GYRUS_GPU_STDCXX=$GYRUS_GPU_STDCXX)}"
  if [ "$use_stdcxx" = bundle ] && older "$have_glibc" "$need_glibc_stdcxx"; then
    echo "the bundle's libstdc++ needs glibc $need_glibc_stdcxx, the host has $have_glibc"
    rc=1
  fi
  local dirs=() d
  [ "$use_stdcxx" = bundle ] && dirs+=("$bundle/lib/stdcxx")
  dirs+=("$bundle/lib" "${torchinfo[dir]}/lib")
  for d in "$(dirname "${torchinfo[dir]}")"/nvidia/*/lib; do [ -d "$d" ] && dirs+=("$d"); done
  # The driver's libcuda: where the loader does not know it already.
  if ! ldconfig -p 2> /dev/null | grep -q 'libcuda\.so\.1 '; then
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/cuda/compat; do
      if [ -e "$d/libcuda.so.1" ]; then dirs+=("$d"); break; fi
    done
  fi
  ldp="$(IFS=:; echo "${dirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  chmod +x "$bundle"/bin/* 2> /dev/null  # in case the copy lost the modes
  echo "LD_LIBRARY_PATH for gyrus:"
  tr ':' '\n' <<< "$ldp" | sed 's/^/  /'
  # Wrappers: gyrus with that path; the twin's python with the caller's own (a user's run).
  mkdir -p "$tmp/wrap"
  # Paths are written with printf %q (bash quoting), so any character in them is safe.
  local q_ldp q_gyrus q_python
  q_ldp="$(printf '%q' "$ldp")"
  q_gyrus="$(printf '%q' "$bundle/bin/gyrus")"
  q_python="$(printf '%q' "$python")"
  cat > "$tmp/wrap/gyrus" <<EOF
#!/usr/bin/env bash
GYRUS_GPU_CHECK_SAVED_LDP="\${LD_LIBRARY_PATH-}"
export GYRUS_GPU_CHECK_SAVED_LDP
LD_LIBRARY_PATH=$q_ldp
export LD_LIBRARY_PATH
exec $q_gyrus "\$@"
EOF
  cat > "$tmp/wrap/python" <<EOF
#!/usr/bin/env bash
if [ -n "\${GYRUS_GPU_CHECK_SAVED_LDP-}" ]; then LD_LIBRARY_PATH="\$GYRUS_GPU_CHECK_SAVED_LDP"; export LD_LIBRARY_PATH
else unset LD_LIBRARY_PATH; fi
exec $q_python "\$@"
EOF
  chmod +x "$tmp/wrap/gyrus" "$tmp/wrap/python"
  echo
  if command -v ldd > /dev/null; then
    local f out all="" missing=0
    for f in "$bundle"/bin/gyrus "$bundle"/bin/libgyrus_runtime.so "$bundle"/bin/libgyrus_io.so; do
      out="$(LD_LIBRARY_PATH="$ldp" ldd "$f" 2>&1)"
      if grep -q "not found" <<< "$out"; then
        echo "$(basename "$f"): unresolved:"; grep "not found" <<< "$out" | sed 's/^/  /'
        missing=1
      fi
      [ "$(basename "$f")" = libgyrus_runtime.so ] && \
        grep -E 'libtorch_cuda|libc10_cuda|libcudart|libstdc\+\+|libITKCommon|libcrypto' <<< "$out" \
        | awk '{print "  " $1 " -> " $3}'
      all+="$out"$'\n'
    done
    # What the host's own system supplied (besides glibc): none of it was packed.
    local system
    system="$(awk '$2 == "=>" && $3 ~ /^\// {print $1 " " $3}' <<< "$all" | sort -u \
      | grep -vE "^(libc|libm|libdl|libpthread|librt|libutil|libresolv|libmvec|ld-linux[^ ]*)\.so[^ ]* " \
      | grep -vF -e "$bundle/" -e "${torchinfo[dir]}/" -e "$(dirname "${torchinfo[dir]}")/nvidia/" \
      | awk '{print $2}' | tr '\n' ' ')"
    echo "from the host's system (not the bundle, torch or glibc): ${system:-nothing}"
    [ "$missing" = 0 ] || rc=1
  else
    echo "(no ldd here: not checked)"
  fi
  if LD_LIBRARY_PATH="$ldp" "$bundle/bin/gyrus" --version; then :; else echo "gyrus does not start"; rc=1; fi
  step_note="libstdc++ of the $use_stdcxx"
  return $rc
}

gyrus() { "$tmp/wrap/gyrus" "$@"; }

# ---------------------------------------------------------------- 3 CUDA tests
tests_summary=""
tests_step() {
  [ -x "$tmp/wrap/gyrus" ] || { step_note="no gyrus wrapper (step 2 failed)"; return 1; }
  local -a envs=()
  if [ "$mode" = cpu ]; then
    envs=(GYRUS_CUDA_TEST_DEVICE=cpu GYRUS_CUDA_TEST_THREADS=2)
    echo "(--cpu: every case on the CPU: GYRUS_CUDA_TEST_DEVICE=cpu)"
  fi
  local rc=0
  if command -v cmake > /dev/null && command -v ctest > /dev/null; then
    local gen=()
    command -v ninja > /dev/null && gen=(-G Ninja)
    echo "\$ cmake -S tests/cuda -B \$TMP/cuda-tests ${gen[*]} -DGYRUS=<bundle gyrus>; ctest -L cuda"
    cmake -S "$root/tests/cuda" -B "$tmp/cuda-tests" "${gen[@]}" -DGYRUS="$tmp/wrap/gyrus" > "$tmp/cmake.log" 2>&1 \
      || { cat "$tmp/cmake.log"; step_note="cmake could not configure tests/cuda"; return 1; }
    tmo env "${envs[@]}" ctest --test-dir "$tmp/cuda-tests" -L cuda -V --timeout 300 2>&1 \
      | grep -vE '^[0-9]+: (Test command|Working Directory|Test timeout computed|Environment variables)|^UpdateCTestConfiguration|^Parse Config|^ Add coverage|^Constructing a list|^Updating test list|^Checking test dependency|^Internal ctest|^Test project|^Done constructing|^Added 0 tests|^test [0-9]+$|^ *$' \
      | tee "$tmp/ctest.log"
    rc=${PIPESTATUS[0]}
    local skipped
    tests_summary="$(grep -Eo '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$tmp/ctest.log" | tail -1)"
    skipped="$(grep -cE '^\s*[0-9]+ - cuda_.*\(Skipped\)' "$tmp/ctest.log")"
    step_note="${tests_summary:-no ctest summary}, ${skipped} skipped"
    # A test skipped on a GPU host is a failure of this check.
    if [ "$rc" = 0 ] && [ "$mode" = gpu ] && [ "$skipped" != 0 ]; then rc=1; fi
  else
    echo "(no cmake/ctest here: running tests/cuda/cuda_test.sh case by case)"
    local c crc
    for c in pretrain_matches_cpu bf16_trains probe_and_finetune resume; do
      tmo env "${envs[@]}" bash "$root/tests/cuda/cuda_test.sh" "$c" "$tmp/wrap/gyrus" "$root" "$tmp/cuda-tests/$c"
      crc=$?
      case "$crc" in 0) ;; 77) [ "$mode" = gpu ] && rc=1 ;; 124) rc=124 ;; *) [ "$rc" = 124 ] || rc=1 ;; esac
    done
    step_note="see cuda-test lines"
  fi
  return "$rc"
}

# ---------------------------------------------------------------- 4 bench
bench_line=""
bench_bf16_ok=0
bench_one() {  # PRECISION NAME [ARGS...]: one gyrus bench train run; its JSON in $outdir/bench-NAME.json
  local precision="$1" name="$2" rc
  shift 2
  local -a args
  if [ "$mode" = gpu ]; then args=(--device cuda --model unet_b)
  else args=(--device cpu --model quickstart --batch 2 --warmup 1 --steps 2 --threads 2); fi
  args+=(--precision "$precision" --json --python "$tmp/wrap/python" "$@")
  echo "\$ GYRUS_TWIN=$GYRUS_TWIN gyrus bench train ${args[*]}"
  tmo "$tmp/wrap/gyrus" bench train "${args[@]}" > "$outdir/bench-$name.json" 2> "$tmp/bench-$name.err"
  rc=$?
  cat "$tmp/bench-$name.err"
  cat "$outdir/bench-$name.json"
  echo "-> exit $rc"
  return $rc
}
bench_summary() {  # NAME: one line from bench-NAME.json
  "$python" - "$outdir/bench-$1.json" <<'PY' 2> /dev/null
import json, sys
d = json.load(open(sys.argv[1]))
for b in d["benchmarks"]:
    f = lambda v, s: "-" if v is None else s.format(v)
    print(f"{b['model']} {b['precision']} {b['patch']}^3 batch {b['batch']} on {b.get('device_name') or b['device']}: "
          f"gyrus {f(b['gyrus_step_ms'], '{:.1f}')} ms/step, PyTorch {f(b['pytorch_step_ms'], '{:.1f}')} ms/step, "
          f"ratio {f(b['ratio'], '{:.2f}')}; peak {f(b['gyrus_peak_mb'], '{:.0f}')} / {f(b['pytorch_peak_mb'], '{:.0f}')} MiB")
PY
}
bench_step() {
  [ -x "$tmp/wrap/gyrus" ] || { step_note="no gyrus wrapper (step 2 failed)"; return 1; }
  if [ -f "$bundle/bench/train_twin.py" ]; then export GYRUS_TWIN="$bundle/bench/train_twin.py"
  else export GYRUS_TWIN="$root/bench/train_twin.py"; fi
  local rc
  bench_one bf16 bf16
  rc=$?
  if [ "$rc" = 0 ]; then
    bench_bf16_ok=1
    bench_line="$(bench_summary bf16)"
  elif [ "$rc" != 124 ]; then
    echo "bf16 did not run (exit $rc): fp32 instead"
    bench_one fp32 fp32
    rc=$?
    [ "$rc" = 0 ] && bench_line="$(bench_summary fp32) (bf16 failed)"
    if [ "$rc" != 0 ] && [ "$rc" != 124 ]; then
      echo "fp32 did not run either (exit $rc): gyrus alone (--no-twin), for its figure; the step still fails"
      if bench_one bf16 gyrus-only --no-twin; then bench_line="$(bench_summary gyrus-only) (the twin failed)"; fi
    fi
  fi
  [ -n "$bench_line" ] || bench_line="$(cat "$tmp"/bench-*.err 2> /dev/null | grep -m1 -i 'error' | cut -c1-160)"
  step_note="$bench_line"
  return "$rc"
}
bench_fp32_step() {  # optional: fp32 beside bf16, for the speed-up of mixed precision
  [ "$bench_bf16_ok" = 1 ] || { step_note="bf16 did not run: fp32 is above"; return 77; }
  bench_one fp32 fp32
  local rc=$?
  [ "$rc" = 0 ] && step_note="$(bench_summary fp32)"
  return "$rc"
}

# ---------------------------------------------------------------- 5 quickstart
quickstart_line=""
runtime_line=""
quickstart_step() {
  [ -x "$tmp/wrap/gyrus" ] || { step_note="no gyrus wrapper (step 2 failed)"; return 1; }
  local qs="$bundle/examples/quickstart.gy"
  [ -f "$qs" ] || qs="$root/examples/quickstart.gy"
  local -a args=(--device "$dev" --store "$tmp/quickstart" --json)
  if [ "$mode" = cpu ]; then
    args+=(--threads 2 --set corpus.subjects=16 --set clinic.subjects=32 --set base.epochs=2 --set base.batch=4
           --set base_lesion.shots=8 --set base_lesion.repeats=2 --set base_age.shots=8 --set base_age.repeats=2)
  fi
  echo "\$ gyrus run ${qs#"$root"/} ${args[*]}"
  local start=$SECONDS rc
  tmo "$tmp/wrap/gyrus" run "$qs" "${args[@]}" > "$outdir/quickstart.json" 2> "$tmp/quickstart.err"
  rc=$?
  cat "$tmp/quickstart.err"
  echo "-> exit $rc in $((SECONDS - start)) s"
  runtime_line="$(grep -m1 '^runtime: ' "$tmp/quickstart.err" | sed 's/^runtime: //')"
  [ "$rc" = 0 ] || { step_note="gyrus run exited $rc"; return "$rc"; }
  quickstart_line="$("$python" - "$outdir/quickstart.json" "$tmp/quickstart" "$dev" <<'PY'
import json, math, os, sys
d = json.load(open(sys.argv[1]))
store, dev = sys.argv[2], sys.argv[3]
print(f"{'stage':14s} {'kind':9s} {'status':7s} {'device':8s} {'seconds':>8s}", file=sys.stderr)
bad = []
for s in d["stages"]:
    print(f"{s['name']:14s} {s['kind']:9s} {s['status']:7s} {s.get('device', '?'):8s} {s['seconds']:8.1f}", file=sys.stderr)
    if s["status"] != "ran" or s.get("device", "").split(":")[0] != dev:
        bad.append(f"{s['name']} {s['status']} on {s.get('device')}")
print(file=sys.stderr)
for m in d["metrics"]:
    v = m["value"]
    print(f"  {m['stage']:14s} {m['name']:26s} {'NaN' if v is None else format(v, '.4f')}", file=sys.stderr)
    if v is None or not math.isfinite(v):
        bad.append(f"{m['stage']}.{m['name']} = {v}")
base = next(s for s in d["stages"] if s["kind"] == "pretrain")
hist = [json.loads(l) for l in open(os.path.join(store, "stages", base["hash"], "history.jsonl")) if l.strip()]
later = hist[1:] or hist
sps = sum(h["samples_per_second"] for h in later) / len(later)
ep = sum(h["seconds"] for h in later) / len(later)
print(f"\npretraining: {len(hist)} epochs; after the first, {ep:.2f} s and {sps:.1f} samples/s an epoch "
      f"(first epoch {hist[0]['seconds']:.2f} s)", file=sys.stderr)
m = {(x["stage"], x["name"]): x["value"] for x in d["metrics"]}
fmt = lambda k: "-" if m.get(k) is None else f"{m[k]:.4f}"
print(f"pretrain {base['seconds']:.1f} s ({ep:.2f} s/epoch), final_loss {fmt(('base', 'final_loss'))}, "
      f"auroc {fmt(('base_lesion', 'auroc'))}, age mae {fmt(('base_age', 'mae'))}, r {fmt(('base_age', 'pearson_r'))}")
if bad:
    print("NOT AS EXPECTED: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
)"
  rc=$?
  step_note="$quickstart_line"
  return "$rc"
}

# ---------------------------------------------------------------- 6 runtime tests
runtime_tests_step() {
  local bin="$bundle/bin/gyrus_runtime_tests"
  [ -x "$bin" ] || { step_note="not in the bundle"; return 77; }
  if [ "$runtime_tests" = no ] || { [ "$runtime_tests" = auto ] && [ "$mode" = cpu ]; }; then
    step_note="not asked for (--runtime-tests)"
    return 77
  fi
  # The module-loading case reads the build machine's path of libgyrus_runtime.so.
  echo "\$ gyrus_runtime_tests --test-case-exclude='the built module*' --no-intro (last 40 lines)"
  OMP_WAIT_POLICY=PASSIVE LD_LIBRARY_PATH="$ldp" tmo "$bin" --test-case-exclude='the built module*' \
    --no-intro 2>&1 | tail -n 40
  local rc=${PIPESTATUS[0]}
  step_note="doctest exit $rc"
  return "$rc"
}

# ---------------------------------------------------------------- 7 GPU kernels
# The CUDA back end of the kernel IR (docs/kernels.md): every pipeline program compiled by
# NVRTC (the host torch's nvidia/cu13 NVRTC) and run on device tensors, against the
# reference interpreter. Exits 77 (skip) without a GPU.
kernels_step() {
  local bin="$bundle/bin/gyrus_cuda_kernels_test"
  [ -x "$bin" ] || { step_note="not in the bundle"; return 77; }
  echo "\$ gyrus_cuda_kernels_test"
  GYRUS_KERNEL_CACHE="$tmp/kernel-cache" LD_LIBRARY_PATH="$ldp" tmo "$bin" 2>&1 | tail -n 40
  local rc=${PIPESTATUS[0]}
  step_note="exit $rc"
  return "$rc"
}

# ---------------------------------------------------------------- 8 bench augment
# The FOMO25 preset's views (std.fomo25) made by the CUDA kernels on the device, against
# eager LibTorch there (issue 9's goal: >= 2,000 patches/s at 96^3). The baseline's
# Python transforms are not on the host: --no-baseline.
augment_step() {
  [ -x "$tmp/wrap/gyrus" ] || { step_note="no gyrus wrapper (step 2 failed)"; return 1; }
  local -a args=(bench augment --no-baseline --json --device "$dev" --seconds 3)
  [ "$mode" = gpu ] || args=(bench augment --no-baseline --json --device cpu --patch 32 --seconds 0.5)
  echo "\$ gyrus ${args[*]}"
  GYRUS_KERNEL_CACHE="$tmp/kernel-cache" tmo "$tmp/wrap/gyrus" "${args[@]}" > "$tmp/augment.json" 2> "$tmp/augment.err"
  local rc=$?
  tail -n 5 "$tmp/augment.err"
  cat "$tmp/augment.json"
  step_note="$(python3 - "$tmp/augment.json" 2> /dev/null <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))["benchmarks"][0]
print(f"{b['backend']} on {b['device']}: fused {b['fused_patches_per_s']:.0f} patches/s at {b['patch']}^3, "
      f"eager LibTorch {b['eager_torch_patches_per_s']:.1f}, compile {b['compile_ms_cold']:.0f} ms")
PY
)"
  [ -n "$step_note" ] || step_note="exit $rc: $(grep -m1 -i error "$tmp/augment.err" | cut -c1-160)"
  return "$rc"
}

# ---------------------------------------------------------------- run them
#    title                                 required  max s  min s  function
step "environment"                         1         60     0      env_step
step "libraries"                           1         30     0      libs_step
step "CUDA tests (ctest -L cuda)"          1         240    60     tests_step
step "bench train ($([ $mode = gpu ] && echo 'U-Net B 96^3 batch 2, bf16' || echo 'quickstart U-Net, CPU'))" \
                                           1         150    40     bench_step
step "quickstart on $dev"                  1         150    30     quickstart_step
step "bench train, fp32 beside bf16"       0         90     60     bench_fp32_step
step "runtime unit tests (host LibTorch)"  0         150    60     runtime_tests_step
step "GPU kernels (CUDA back end)"         0         90     20     kernels_step
step "bench augment (FOMO25 preset)"       0         60     20     augment_step

# ---------------------------------------------------------------- summary
{
  echo "## gyrus GPU check, $(now_utc)"
  echo
  echo "- host: $(hostname), $(nproc) cores, $(getconf GNU_LIBC_VERSION 2> /dev/null)"
  if command -v nvidia-smi > /dev/null 2>&1; then
    echo "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2> /dev/null | head -1)"
  else
    echo "- GPU: none (nvidia-smi not found)"
  fi
  echo "- torch: ${torchinfo[version]:-?} (CUDA ${torchinfo[cuda]:-?}, cuDNN ${torchinfo[cudnn]:-?}), python $python"
  echo "- gyrus runtime: ${runtime_line:-? (the quickstart did not start)}"
  echo "- bundle: $(sed -n 's/^source: *//p' "$bundle/BUNDLE.txt" 2> /dev/null), packed $(sed -n 's/^packed: *//p' "$bundle/BUNDLE.txt" 2> /dev/null)"
  echo "- mode: $mode$([ "$mode" = cpu ] && echo ' (a check of the script on the CPU: not a CUDA result)')"
  echo
  echo "| step | result | seconds | notes |"
  echo "|---|---|---|---|"
  for i in "${!names[@]}"; do
    echo "| ${names[$i]} | ${results[$i]} | ${seconds[$i]} | ${notes[$i]//|/\\|} |"
  done
  echo
  echo "overall: $([ "$failed" = 0 ] && echo PASS || echo FAIL) in $((SECONDS - t0)) s"
} > "$outdir/summary.md"
rule
echo "== gpu-check summary (also in $outdir/summary.md; the whole log in $log)"
rule
cat "$outdir/summary.md"
exit "$failed"
