#!/usr/bin/env bash
# Installs gyrus's build and test dependencies on Debian 12. Idempotent: installs only
# what is missing.
#   1. Debian packages (apt, as root or through sudo).
#   2. LibTorch: the PyPI wheel torch==2.11.0 (its default Linux build: CUDA 13.0) in a
#      virtual environment outside the clone, created once and shared by every clone:
#      $GYRUS_TORCH_VENV, default ~/.cache/gyrus/torch-2.11.0 (about 4.7 GB with its
#      nvidia-* wheels; pip's cache makes a second environment quick). CMake finds it
#      there (cmake/GyrusTorch.cmake). Runs as the calling user, not through sudo.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache lld pkg-config
  antlr4 libantlr4-runtime-dev default-jre-headless
  python3 python3-venv python3-pip
  llvm-14-dev
  libinsighttoolkit5-dev libgdcm-tools zlib1g-dev libpng-dev
  libtomlplusplus-dev doctest-dev libcli11-dev libfmt-dev nlohmann-json3-dev
  libsqlite3-dev libssl-dev libbenchmark-dev
  # Data-parallel training: the Gloo headers LibTorch's ProcessGroupGloo.hpp includes (the
  # wheel has Gloo inside libtorch_cpu, without its headers; runtime/src/Distributed.cpp).
  libgloo-dev
  # The Slurm executor's test runs a one-node cluster (tests/slurm/, docs/cluster.md).
  slurmctld slurmd slurm-client munge
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} Debian packages present"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Torch's CMake configuration of its CUDA build needs a CUDA toolkit's nvcc, even with no
# GPU (docs/building.md). The development and CI machines have CUDA 13 in /usr/local/cuda;
# Debian 12 has no CUDA 13 package, so say so before downloading 2.7 GB.
if [ -z "${CUDACXX:-}" ] && [ ! -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null 2>&1; then
  echo "install-deps: no CUDA toolkit: /usr/local/cuda/bin/nvcc is missing and nvcc is not on PATH." >&2
  echo "  LibTorch 2.11's CMake configuration (CUDA 13.0 build) needs nvcc 13.0 to configure gyrus," >&2
  echo "  even without a GPU. Install NVIDIA's CUDA 13.0 toolkit (e.g. its Debian 12 network" >&2
  echo "  repository's cuda-toolkit-13-0), or set CUDACXX to its nvcc, then run this again." >&2
  exit 1
fi

# LibTorch from PyPI. The pin matches the GPU host's image (torch 2.11.0+cu130), so what
# is built here also runs there.
torch_version=2.11.0
venv="${GYRUS_TORCH_VENV:-$HOME/.cache/gyrus/torch-$torch_version}"
# numpy, nibabel and scipy: the Python side of the benchmarks (bench/*_twin.py);
# scikit-image with Yucca 2.2.6 (the FOMO25 baseline's pin) and batchgenerators, whose
# augmentation transforms bench/augment_twin.py times. Yucca's own dependencies (its
# training stack: wandb, lightning, ...) are not needed for its transforms: --no-deps.
python_packages=("torch==$torch_version" numpy nibabel scipy scikit-image==0.26.0)
no_deps_packages=(yucca==2.2.6 batchgenerators==0.25.1)

has_torch() {
  "$venv/bin/python" - "$torch_version" 2>/dev/null <<'EOF'
import sys, torch, numpy, nibabel, scipy, skimage, yucca, batchgenerators
sys.exit(0 if torch.__version__.split("+")[0] == sys.argv[1] else 1)
EOF
}

if has_torch; then
  echo "install-deps: torch $torch_version present in $venv"
  exit 0
fi

mkdir -p "$(dirname "$venv")"
# One installer at a time (two clones set up at once share the environment).
exec 9>"$venv.lock"
flock 9
if has_torch; then
  echo "install-deps: torch $torch_version present in $venv"
  exit 0
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pip" 2>/dev/null; then
  # Only a broken virtual environment (or an empty folder) is replaced: never a folder
  # that GYRUS_TORCH_VENV happens to name by mistake.
  if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv" 2>/dev/null)" ]; then
    echo "install-deps: $venv exists and is not a Python virtual environment; set GYRUS_TORCH_VENV" \
         "to a new folder" >&2
    exit 1
  fi
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
fi
echo "install-deps: installing ${python_packages[*]} into $venv (about 2.7 GB to download once)"
start=$(date +%s)
"$venv/bin/python" -m pip install --quiet --progress-bar off --disable-pip-version-check \
  "${python_packages[@]}"
"$venv/bin/python" -m pip install --quiet --progress-bar off --disable-pip-version-check --no-deps \
  "${no_deps_packages[@]}"
has_torch || { echo "install-deps: torch $torch_version did not install into $venv" >&2; exit 1; }
echo "install-deps: torch $torch_version installed in $(( $(date +%s) - start )) s"
