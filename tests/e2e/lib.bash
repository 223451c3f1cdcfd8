# Helpers for the end-to-end scripts: run the real binary, check exit codes and messages.
QATC=${1:?usage: $0 QATC_BINARY SOURCE_DIR}
SRC=${2:?usage: $0 QATC_BINARY SOURCE_DIR}
WORK=$(mktemp -d /tmp/qatc_e2e.XXXXXX)
# QATC_KEEP_WORK=1 keeps the work folder (a failed run's inputs, logs and crash files) for inspection.
[ -n "${QATC_KEEP_WORK:-}" ] || trap 'rm -rf "$WORK"' EXIT
failures=0

# expect CODE PATTERN -- command...: the command exits with CODE and its stderr matches PATTERN
# (an extended regex) in exactly one "qatc: " line.
expect() {
  local code=$1 pattern=$2
  shift 3
  local out rc=0
  out=$("$@" 2>&1 >/dev/null) || rc=$?
  if [[ $rc -ne $code ]]; then
    echo "FAIL: expected exit $code, got $rc: $*"; echo "$out" | tail -5; failures=$((failures + 1)); return
  fi
  if [[ $code -ne 0 ]]; then
    local n
    n=$(grep -c '^qatc: ' <<<"$out" || true)
    if [[ $n -ne 1 ]] || ! grep -Eq -- "$pattern" <<<"$out"; then
      echo "FAIL: stderr does not match /$pattern/ in one line: $*"; echo "$out" | tail -5; failures=$((failures + 1)); return
    fi
  fi
  echo "ok: exit $code: $*"
}

# no_files DIR: DIR is absent or holds no files (nothing partial was written).
no_files() {
  if [[ -d $1 ]] && [[ -n $(find "$1" -type f) ]]; then
    echo "FAIL: files left in $1:"; find "$1" -type f; failures=$((failures + 1))
  else
    echo "ok: nothing written in $1"
  fi
}

finish() {
  if [[ $failures -ne 0 ]]; then echo "$failures failure(s)"; exit 1; fi
  echo "all passed"
}
