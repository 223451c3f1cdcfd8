#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (address + undefined-behaviour sanitizers) and runs
# each for a bounded time on a seed corpus of real files. Any crash, sanitizer report or
# uncaught exception fails the test.
set -uo pipefail
source "$(dirname "$0")/lib.bash"
SECONDS_EACH=${QATC_FUZZ_SECONDS:-60}
BUILD=$SRC/build-fuzz
if ! command -v clang++ >/dev/null; then echo "FAIL: clang++ not installed (scripts/setup.sh installs it)"; exit 1; fi
CC=clang CXX=clang++ cmake -S "$SRC" -B "$BUILD" -G Ninja -DQATC_FUZZ=ON -DQATC_BUILD_TESTS=OFF -DQATC_BUILD_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || { echo "FAIL: configure"; exit 1; }
cmake --build "$BUILD" --target fuzz_model_loader fuzz_recipe -j2 >"$WORK/build.log" 2>&1 ||
  { tail -30 "$WORK/build.log"; echo "FAIL: build"; exit 1; }

# Seed corpora: a real int8 model and checkpoint from a tiny run, and every shipped recipe.
R=$WORK/r.yaml
cat >"$R" <<'YAML'
name: fuzz_seed
stages: [train, ptq, convert]
data: {dataset: mnist, train_subset: 500}
model:
  input: [28, 28, 1]
  layers:
    - {type: conv2d, name: conv, filters: 2, kernel: 3, strides: 2, use_bias: false}
    - {type: batchnorm, name: bn}
    - {type: relu, name: relu}
    - {type: maxpool, pool: 2}
    - {type: flatten}
    - {type: dense, name: logits, units: 10}
train: {epochs: 1, batch_size: 100}
ptq: {batches: 2, batch_size: 100}
YAML
"$QATC" -q run "$R" --out "$WORK/run" || { echo "FAIL: seed run"; exit 1; }
mkdir -p "$WORK/models" "$WORK/recipes"
cp "$WORK/run/ptq.int8" "$WORK/run/ptq.ckpt" "$WORK/models/"
find "$SRC/recipes" -name '*.yaml' -exec cp {} "$WORK/recipes/" \;
cp "$R" "$WORK/recipes/"

for target in fuzz_model_loader:models fuzz_recipe:recipes; do
  name=${target%%:*}
  corpus=$WORK/${target##*:}
  echo "running $name for ${SECONDS_EACH}s"
  if "$BUILD/fuzz/$name" -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -max_len=200000 \
      -artifact_prefix="$WORK/" "$corpus" >"$WORK/$name.log" 2>&1; then
    echo "ok: $name: $(grep -E 'Done [0-9]+ runs' "$WORK/$name.log")"
  else
    tail -40 "$WORK/$name.log"
    echo "FAIL: $name found a crash"
    failures=$((failures + 1))
  fi
done
finish
