#!/usr/bin/env bash
# Installs gyrus's build and test dependencies from Debian 12 packages.
# Idempotent: installs only the packages that are missing. Run as root (or with sudo).
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache lld pkg-config
  antlr4 libantlr4-runtime-dev default-jre-headless
  libtorch-dev libopenblas0-pthread libgloo-dev
  llvm-14-dev
  libinsighttoolkit5-dev libgdcm-tools zlib1g-dev
  libtomlplusplus-dev doctest-dev libcli11-dev libfmt-dev nlohmann-json3-dev
  libsqlite3-dev libssl-dev libbenchmark-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
