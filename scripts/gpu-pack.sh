#!/usr/bin/env bash
# Packs a build made on this machine for the GPU host (docs/gpu.md): the gyrus binary,
# its two modules and the torch test binary, stripped of debug information, plus every
# shared library they need that the GPU host's image does not bring (ANTLR, ITK's NIfTI
# pieces, fmt, SQLite, OpenSSL's libcrypto, zlib; libstdc++/libgcc_s apart, used there
# only when the host's own are too old). LibTorch, CUDA and glibc are NOT packed: the
# host's torch 2.11.0+cu130 and its nvidia-* libraries stand in for the wheel's here.
#
#   bash scripts/gpu-pack.sh [--build DIR] [--out DIR] [--no-tests]
#
# Then, through the device tool: command `bash scripts/gpu-check.sh`, carry ["gpu-bundle"].
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build"
out="$root/gpu-bundle"
tests=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build|--out)
      [ $# -ge 2 ] || { echo "$(basename "$0"): $1 needs a value" >&2; exit 2; } ;;
  esac
  case "$1" in
    --build) build="$(cd "$2" && pwd)"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-tests) tests=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "gpu-pack: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
limit_mib=40   # the working tree, the examples and the scripts travel too (64 MiB in all)

die() { echo "gpu-pack: error: $*" >&2; exit 1; }
for f in bin/gyrus bin/libgyrus_runtime.so bin/libgyrus_io.so; do
  [ -f "$build/$f" ] || die "$build/$f is missing: build first (bash scripts/build.sh, or cmake --build build)"
done
command -v strip > /dev/null || die "strip (binutils) is needed"
command -v ldd > /dev/null || die "ldd is needed"

# A fresh folder, filled beside the old one and swapped in at the end.
stage="$(mktemp -d "${out%/}.tmp.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib/stdcxx" "$stage/examples" "$stage/bench"

copy_stripped() {  # SRC DEST: a copy without debug information (the build keeps its own)
  cp -L "$1" "$2"
  chmod u+w "$2"
  strip --strip-debug "$2"
}

bins=(bin/gyrus bin/libgyrus_runtime.so bin/libgyrus_io.so)
for f in "${bins[@]}"; do copy_stripped "$build/$f" "$stage/$f"; done
declare -A test_source=()
if [ "$tests" = 1 ]; then
  # The LibTorch tests, and the GPU kernels' check against the interpreter (CudaKernelsTest.cpp).
  for t in gyrus_runtime_tests gyrus_cuda_kernels_test; do
    [ -f "$build/tests/runtime/$t" ] || continue
    copy_stripped "$build/tests/runtime/$t" "$stage/bin/$t"
    bins+=("bin/$t")
    test_source["bin/$t"]="$build/tests/runtime/$t"
  done
fi

# What the host brings itself: LibTorch and its CUDA libraries (the host's torch wheel),
# the driver, OpenMP from torch, and glibc. Everything else that ldd resolves is packed.
host_provided() {
  case "$1" in
    */torch/lib/*|*/nvidia/*|/usr/local/cuda*|*/cuda/lib*) return 0 ;;
  esac
  case "$(basename "$1")" in
    libtorch*|libc10*|libcuda.so*|libcudart*|libcublas*|libcudnn*|libnccl*|libcufft*|libcurand*|libcusparse*|\
    libcusolver*|libcupti*|libnvrtc*|libnvJitLink*|libnvshmem*|libcufile*|libnvToolsExt*|libgomp*|\
    libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libutil.so.*|libresolv.so.*|ld-linux*|linux-vdso*|\
    libmvec.so.*|libanl.so.*)
      return 0 ;;
  esac
  return 1
}

declare -A packed=()
missing=()
for f in "${bins[@]}"; do
  # ldd of the build's copy: its RUNPATH finds the wheel's libraries here.
  src="$build/$f"
  [ -n "${test_source[$f]:-}" ] && src="${test_source[$f]}"
  while read -r name arrow path _; do
    if [ "$arrow" = "=>" ] && [ "$path" = "not" ]; then missing+=("$name (needed by $f)"); continue; fi
    [ "$arrow" = "=>" ] && [ -n "$path" ] || continue
    host_provided "$path" && continue
    [ -n "${packed[$name]:-}" ] && continue
    packed[$name]="$path"
  done < <(ldd "$src")
done
[ ${#missing[@]} -eq 0 ] || die "ldd cannot resolve: ${missing[*]}"

for name in "${!packed[@]}"; do
  case "$name" in
    libstdc++.so.*|libgcc_s.so.*) dest="$stage/lib/stdcxx/$name" ;;
    *) dest="$stage/lib/$name" ;;
  esac
  copy_stripped "${packed[$name]}" "$dest"
done

# A binary copied while the linker was writing it would not load: check each copy.
for f in "$stage"/bin/* "$stage"/lib/*.so* "$stage"/lib/stdcxx/*; do
  readelf -h "$f" > /dev/null 2>&1 || die "$f is not a complete ELF file (was the build still linking?): pack again"
done
"$stage/bin/gyrus" --version > /dev/null || die "the packed gyrus does not start"

# The files a run there reads from the bundle, so that they match the binaries.
cp "$root/examples/quickstart.gy" "$stage/examples/"
[ -f "$root/bench/train_twin.py" ] && cp "$root/bench/train_twin.py" "$stage/bench/"

# What the bundle needs of the host: the highest glibc and libstdc++ symbol versions.
max_version() {  # PREFIX FILE...: the highest PREFIX_x.y.z any file references
  for f in "${@:2}"; do objdump -T "$f" 2> /dev/null || true; done \
    | grep -o "$1_[0-9][0-9.]*" | sed "s/^$1_//" | sort -uV | tail -1
}
mapfile -t ours < <(cd "$stage" && ls bin/* lib/*.so* 2> /dev/null)
glibc_needed="$(cd "$stage" && max_version GLIBC "${ours[@]}")"
glibcxx_needed="$(cd "$stage" && max_version GLIBCXX "${ours[@]}")"
glibc_stdcxx="$(cd "$stage" && max_version GLIBC lib/stdcxx/*)"
commit="$(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo unknown)"
dirty="$(git -C "$root" status --porcelain --untracked-files=no 2> /dev/null | grep -q . && echo ' (with uncommitted changes)' || true)"
{
  echo "gyrus GPU bundle"
  echo "packed:          $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname)"
  echo "source:          $commit$dirty"
  echo "build:           $build"
  echo "version:         $("$build/bin/gyrus" --version 2> /dev/null || echo '?')"
  echo "needs glibc:     $glibc_needed (binaries and lib/), $glibc_stdcxx (lib/stdcxx/)"
  echo "needs GLIBCXX:   $glibcxx_needed (lib/stdcxx/ is used when the host's libstdc++ lacks it)"
  echo "torch:           the host's torch 2.11.0 (cu130); not packed"
  echo
  (cd "$stage" && find . -type f ! -name BUNDLE.txt -printf '%10s  %P\n' | sort -k2)
} > "$stage/BUNDLE.txt"
echo "GLIBC=$glibc_needed GLIBC_STDCXX=$glibc_stdcxx GLIBCXX=$glibcxx_needed" > "$stage/needs.env"

rm -rf "$out"
mv "$stage" "$out"
trap - EXIT
chmod -R a+rX "$out"

bytes="$(du -sb "$out" | cut -f1)"
mib="$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')"
cat "$out/BUNDLE.txt"
echo
echo "gpu-pack: $out: $mib MiB in $(find "$out" -type f | wc -l) files"
if [ "$bytes" -gt $((limit_mib * 1048576)) ]; then
  die "the bundle is over $limit_mib MiB: the device tool carries 64 MiB in all"
fi
rel="${out#"$root"/}"
echo "gpu-pack: on the GPU host (the device tool's run), from the repository root:"
echo "  command: bash scripts/gpu-check.sh"
echo "  carry:   [\"$rel\"]"
