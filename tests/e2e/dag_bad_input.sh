#!/usr/bin/env bash
# DAG models and presets: every mistake gets one clear line naming the layer or key, exit 2,
# and leaves nothing behind. Also `qatc inspect` on a preset recipe (no data needed).
set -uo pipefail
source "$(dirname "$0")/lib.bash"

R=$WORK/r.yaml
OUT=$WORK/run
dag() {
  cat >"$R" <<'YAML'
name: e2e_dag
data: {dataset: mnist, train_subset: 200}
model:
  input: [28, 28, 1]
  layers:
    - {type: conv2d, name: a, filters: 4, kernel: 3, padding: same, activation: relu}
    - {type: depthwise_conv2d, name: dw, kernel: 3, padding: same}
    - {type: add, name: sum, inputs: [a, dw]}
    - {type: conv2d, name: b, filters: 6, kernel: 3, strides: 2, padding: same, inputs: sum}
    - {type: concat, name: cat, inputs: [b, b]}
    - {type: global_avgpool}
    - {type: dense, name: logits, units: 10}
train: {epochs: 1, batch_size: 50}
YAML
}
preset() {
  cat >"$R" <<'YAML'
name: e2e_preset
data: {dataset: mnist}
model: {preset: mobilenet_v2, alpha: 1.0, input: [224, 224, 3], classes: 1000}
YAML
}

dag; sed -i 's/inputs: \[a, dw\]/inputs: [a, nosuch]/' "$R"
expect 2 "r.yaml:[0-9]+:[0-9]+: layer 'sum' names input 'nosuch', but no earlier layer has that name" -- "$QATC" run "$R" --out "$OUT"
dag; sed -i 's/inputs: \[a, dw\]/inputs: [a, b]/' "$R"
expect 2 "layer 'sum' names input 'b', but no earlier layer" -- "$QATC" run "$R" --out "$OUT"
dag; sed -i 's/inputs: \[b, b\]/inputs: [b, sum]/' "$R"
expect 2 "layer 'cat' \(concat\): input 'sum' has shape \[28, 28, 4\] but input 'b' has \[14, 14, 6\]" -- "$QATC" run "$R" --out "$OUT"
dag; sed -i 's/name: dw, kernel: 3, padding: same/name: dw, kernel: 3/' "$R"
expect 2 "layer 'sum' \(add\): input 'dw' has shape \[26, 26, 4\] but input 'a/relu' has \[28, 28, 4\]" -- "$QATC" run "$R" --out "$OUT"
dag; sed -i 's/inputs: \[b, b\]/inputs: b/' "$R"
expect 2 "r.yaml:[0-9]+:[0-9]+: a concat layer needs 'inputs' naming at least two layers" -- "$QATC" run "$R" --out "$OUT"
no_files "$OUT"

preset
expect 0 '' -- "$QATC" inspect "$R"
out=$("$QATC" inspect "$R" --json)
if grep -q '"params": *3538984' <<<"$out" && grep -q '"macs": *300774272' <<<"$out"; then echo "ok: inspect --json"
else echo "FAIL: inspect --json: $(head -c 300 <<<"$out")"; failures=$((failures + 1)); fi
preset; sed -i 's/mobilenet_v2/mobilenet_v9/' "$R"
expect 2 "r.yaml:3:17: unknown preset 'mobilenet_v9'; expected one of: mobilenet_v1, mobilenet_v2, resnet50_v1" -- "$QATC" inspect "$R"
preset; sed -i 's/mobilenet_v2, alpha: 1.0/mobilenet_v1, alpha: 0.01/' "$R"
expect 2 "preset mobilenet_v1: alpha 0.01 leaves layers with no filters" -- "$QATC" run "$R" --out "$OUT"
preset; sed -i 's/input: \[224, 224, 3\]/input: [1, 1, 3]/; s/mobilenet_v2/mobilenet_v1/' "$R"
expect 2 "layer 'conv_dw_2' \(depthwise_conv2d\): 'valid' padding needs input size >= kernel size" -- "$QATC" run "$R" --out "$OUT"
preset; sed -i 's/input: \[224, 224, 3\]/input: [2, 2, 3]/; s/mobilenet_v2/nasnet_mobile/' "$R"
expect 2 "preset nasnet_mobile needs an input of at least 3x3" -- "$QATC" run "$R" --out "$OUT"
preset; sed -i 's/classes: 1000}/classes: 1000, blocks: [3, 4]}/; s/mobilenet_v2/resnet50_v2/' "$R"
expect 2 "preset resnet50_v2: 'blocks' must list the blocks of the four stages" -- "$QATC" run "$R" --out "$OUT"
preset; sed -i 's/classes: 1000}/classes: 1000, layers: []}/' "$R"
expect 2 "give either 'preset' or 'layers', not both" -- "$QATC" run "$R" --out "$OUT"
no_files "$OUT"

# Image folders: an empty one, and a labels file that names a missing image.
IMG=$WORK/imagenet
mkdir -p "$IMG/train/n01" "$IMG/val"
folder() {
  cat >"$R" <<YAML
name: e2e_folder
data: {dataset: image_folder, path: $IMG, labels_file: val.txt}
model: {preset: mobilenet_v1, alpha: 0.25, input: [32, 32, 3], classes: 2}
train: {epochs: 1, batch_size: 2}
YAML
}
folder
expect 2 "imagenet/train: no images in its 1 class folders" -- "$QATC" train "$R" --out "$OUT"
printf 'not really a jpeg' >"$IMG/train/n01/a.JPEG"
printf 'missing.JPEG 0\n' >"$IMG/val.txt"
expect 2 "val.txt:1: .*missing.JPEG" -- "$QATC" run "$R" --out "$OUT" --set 'stages=[train, eval]' 
no_files "$OUT"
finish
