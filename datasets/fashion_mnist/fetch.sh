#!/usr/bin/env bash
# Makes Fashion-MNIST available to qatc, each file checked against SHA256SUMS next to this
# script. In order: the Debian package's copy in /usr/share/datasets/fashion-mnist (read in
# place, nothing to do); TARGET_DIR when it already holds the files; installing the package
# dataset-fashion-mnist with apt-get; the canonical archives downloaded into TARGET_DIR.
# A failed download leaves no partial files.
# Usage: datasets/fashion_mnist/fetch.sh TARGET_DIR   (qatc runs it on first use)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sums="$here/SHA256SUMS"
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
system_dir=/usr/share/datasets/fashion-mnist
package=dataset-fashion-mnist
mirror=http://fashion-mnist.s3-website.eu-central-1.amazonaws.com

say() { echo "fashion_mnist fetch: $*"; }
die() { echo "fashion_mnist fetch: error: $*" >&2; exit 1; }

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
# line, or else (another compression of the same data) its decompressed content matches X's.
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

if all_good "$system_dir"; then
  say "Fashion-MNIST is installed in $system_dir (Debian package $package); qatc reads it there, nothing to do"
  exit 0
fi
if all_good "$target"; then
  say "all four files are in $target and match SHA256SUMS; nothing to do"
  exit 0
fi

if command -v apt-get >/dev/null; then
  apt_cmd=(env DEBIAN_FRONTEND=noninteractive apt-get install -y "$package")
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then
      # Without a terminal sudo cannot ask for a password: fail instead of hanging.
      if [[ -t 0 ]]; then apt_cmd=(sudo "${apt_cmd[@]}"); else apt_cmd=(sudo -n "${apt_cmd[@]}"); fi
    else
      apt_cmd=()
      say "not root and sudo not found; skipping apt-get install $package"
    fi
  fi
  if ((${#apt_cmd[@]})); then
    say "installing the Debian package: ${apt_cmd[*]}"
    if "${apt_cmd[@]}" && all_good "$system_dir"; then
      say "Fashion-MNIST is installed in $system_dir; qatc reads it there"
      exit 0
    fi
    say "apt-get install $package did not provide the files (try apt-get update first)"
  fi
else
  say "apt-get not found; skipping the Debian package $package"
fi

command -v curl >/dev/null ||
  die "curl not found and the Debian package $package is not installed. Install one of them (apt-get install $package, or apt-get install curl and run again), or put the four files ${files[*]} (plain or .gz) in a folder and set data.path to it in the recipe"

mkdir -p "$target" 2>/dev/null || die "cannot create $target"
tmp=$(mktemp -d "$target/.fetch.XXXXXX") || die "cannot write into $target"
trap 'rm -rf "$tmp"' EXIT

say "trying $mirror"
if ! curl -fsSL --max-time 20 -o "$tmp/probe" "$mirror/t10k-labels-idx1-ubyte.gz"; then
  die "$mirror is not reachable. Install the Debian package (apt-get install $package), or get the four files ${files[*]} (plain or .gz, https://github.com/zalandoresearch/fashion-mnist), put them in a folder and set data.path to it in the recipe"
fi
rm -f "$tmp/probe"
for name in "${files[@]}"; do
  curl -fsSL --connect-timeout 20 --speed-limit 1024 --speed-time 30 -o "$tmp/$name.gz" "$mirror/$name.gz" ||
    die "download of $mirror/$name.gz failed; run again, or install the Debian package $package"
  verify "$tmp/$name.gz" || die "$mirror/$name.gz does not match $sums; nothing was installed"
done

# Everything is verified: move into place, one rename per file, and drop any stale twin.
for name in "${files[@]}"; do
  mv -f "$tmp/$name.gz" "$target/"
  rm -f "${target:?}/$name"
done
say "Fashion-MNIST is in $target (checksums match $sums)"
