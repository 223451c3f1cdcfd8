#!/usr/bin/env bash
# Every kind of bad input gets one clear line, exit code 2, and no partial file.
set -uo pipefail
source "$(dirname "$0")/lib.bash"

R=$WORK/r.yaml
good() {
  cat >"$R" <<'YAML'
name: e2e_bad
data: {dataset: mnist, train_subset: 200}
model:
  input: [28, 28, 1]
  layers:
    - {type: conv2d, name: conv, filters: 4, kernel: 3, activation: relu}
    - {type: maxpool, pool: 2}
    - {type: flatten}
    - {type: dense, name: logits, units: 10}
train:
  epochs: 1
  batch_size: 50
YAML
}
OUT=$WORK/run

expect 0 '' -- "$QATC" --help
expect 0 '' -- "$QATC" --version
expect 0 '' -- "$QATC" run --help
expect 2 'qatc: ' -- "$QATC"
expect 2 'qatc: .*nosuch' -- "$QATC" --nosuch run "$R"
expect 2 'qatc: .*threads' -- "$QATC" --threads -3 run "$R"
expect 2 'missing.yaml: recipe file not found' -- "$QATC" run "$WORK/missing.yaml" --out "$OUT"

good; printf 'name: x\nmodel: [1, 2\n' >"$R"
expect 2 'r.yaml:[0-9]+:[0-9]+: YAML syntax error' -- "$QATC" run "$R" --out "$OUT"
good; sed -i 's/epochs: 1/epocs: 1/' "$R"
expect 2 "r.yaml:11:3: unknown key 'epocs' in 'train'; did you mean 'epochs'" -- "$QATC" run "$R" --out "$OUT"
good; sed -i 's/batch_size: 50/batch_size: lots/' "$R"
expect 2 "r.yaml:12:15: 'train.batch_size' must be an integer" -- "$QATC" run "$R" --out "$OUT"
good; sed -i 's/epochs: 1/epochs: -2/' "$R"
expect 2 "r.yaml:11:11: 'train.epochs' is -2, must be in" -- "$QATC" run "$R" --out "$OUT"
good; sed -i 's/batch_size: 50/batch_size: 0/' "$R"
expect 2 "'train.batch_size' is 0" -- "$QATC" run "$R" --out "$OUT"
good
expect 2 "--set train.epochs: 'train.epochs' is -1" -- "$QATC" run "$R" --out "$OUT" --set train.epochs=-1
good; sed -i 's/type: flatten/type: flat/' "$R"
expect 2 "r.yaml:8:14: unknown value 'flat' for 'type'" -- "$QATC" run "$R" --out "$OUT"
good; sed -i 's/dataset: mnist/dataset: cifar99/' "$R"
expect 2 "cifar99" -- "$QATC" run "$R" --out "$OUT"
good; sed -i "s|dataset: mnist|dataset: mnist, path: $WORK/nodata|" "$R"
expect 2 "nodata" -- "$QATC" run "$R" --out "$OUT"
good; sed -i 's/units: 10/units: 10, inputs: nosuchlayer/' "$R"
expect 2 "layer 'logits' names input 'nosuchlayer'" -- "$QATC" run "$R" --out "$OUT"
good; sed -i 's/input: \[28, 28, 1\]/input: [32, 32, 1]/' "$R"
expect 2 "28x28x1 but the model in .*r.yaml takes input \[32, 32, 1\]" -- "$QATC" run "$R" --out "$OUT"
no_files "$OUT"

# Damaged data: a truncated IDX file and an image/label count mismatch.
DATA=$WORK/data
mkdir -p "$DATA"
MNIST=${QATC_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qatc}/mnist
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  if [[ -f $MNIST/$f ]]; then cp "$MNIST/$f" "$DATA/"; else gzip -dc "$MNIST/$f.gz" >"$DATA/$f"; fi
done
good; sed -i "s|dataset: mnist|dataset: mnist, path: $DATA|" "$R"
head -c 1000000 "$MNIST/train-images-idx3-ubyte" >"$DATA/train-images-idx3-ubyte"
expect 2 "train-images-idx3-ubyte: .*truncated" -- "$QATC" run "$R" --out "$OUT"
cp "$MNIST/train-images-idx3-ubyte" "$DATA/"
cp "$MNIST/t10k-labels-idx1-ubyte" "$DATA/train-labels-idx1-ubyte"
expect 2 "train-labels-idx1-ubyte.*(count|mismatch|10000)" -- "$QATC" run "$R" --out "$OUT"
no_files "$OUT"

# Model files: a checkpoint of another model, a corrupted one, a truncated one.
good
expect 0 '' -- "$QATC" train "$R" --out "$OUT" --threads 1
expect 0 '' -- "$QATC" eval "$OUT/float.ckpt"
cp "$OUT/float.ckpt" "$WORK/good.ckpt"
python3 - "$OUT/float.ckpt" "$WORK/flip.ckpt" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read()); b[len(b) // 2] ^= 0x40
open(sys.argv[2], 'wb').write(b)
PY
expect 2 "flip.ckpt: checksum mismatch" -- "$QATC" eval "$WORK/flip.ckpt"
head -c 5000 "$OUT/float.ckpt" >"$WORK/trunc.ckpt"
expect 2 "trunc.ckpt: .*(truncated|checksum)" -- "$QATC" eval "$WORK/trunc.ckpt"
expect 2 "r.yaml: not a qatc checkpoint" -- "$QATC" eval "$R"
expect 2 "made for a different model" -- "$QATC" train "$R" --out "$OUT" --resume --set model.layers.0.filters=6
cmp -s "$OUT/float.ckpt" "$WORK/good.ckpt" && echo "ok: float.ckpt untouched" || { echo "FAIL: float.ckpt changed"; failures=$((failures + 1)); }
grep -q "filters: 4" "$OUT/recipe.yaml" && echo "ok: recipe.yaml untouched" || { echo "FAIL: recipe.yaml changed"; failures=$((failures + 1)); }
expect 2 "unknown split" -- "$QATC" eval "$OUT/float.ckpt" --data mnist:validation
finish
