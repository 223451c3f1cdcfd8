#!/usr/bin/env bash
# ptq and qat stages on real MNIST (small subsets), eval of quantized checkpoints, resume,
# and their bad inputs: one line, exit 2, nothing written.
set -uo pipefail
source "$(dirname "$0")/lib.bash"

R=$WORK/r.yaml
cat >"$R" <<'YAML'
name: e2e_quant
stages: [train, ptq, qat, eval, report]
data: {dataset: mnist, train_subset: 3000, validation_split: 0.1}
model:
  input: [28, 28, 1]
  layers:
    - {type: conv2d, name: conv, filters: 8, kernel: 3, use_bias: false}
    - {type: batchnorm, name: bn}
    - {type: relu, name: relu}
    - {type: maxpool, pool: 2}
    - {type: flatten}
    - {type: dense, name: logits, units: 10}
train: {epochs: 2, batch_size: 64}
ptq: {batches: 4, batch_size: 100}
qat: {subset: 1000, steps: 12, batch_size: 100, freeze_bn_after_steps: 6, checkpoint_every_steps: 5}
YAML
OUT=$WORK/run

# qat or ptq before any float model exists: say which stage makes it.
expect 2 "qat: .*float.ckpt not found; the train stage makes it" -- "$QATC" qat "$R" --out "$OUT"
expect 2 "ptq: .*float.ckpt not found; the train stage makes it" -- "$QATC" ptq "$R" --out "$OUT"
no_files "$OUT"

expect 0 '' -- "$QATC" --threads 1 run "$R" --out "$OUT" --json
for f in float.ckpt ptq.ckpt qat.ckpt report.json report.md metrics.jsonl; do
  [[ -f $OUT/$f ]] && echo "ok: $f written" || { echo "FAIL: $f missing"; failures=$((failures + 1)); }
done
python3 - "$OUT/report.json" <<'PY' || failures=$((failures + 1))
import json, sys
r = json.load(open(sys.argv[1]))
rows = {x["model"]: x for x in r["results"]}
assert set(rows) == {"float", "ptq_fakequant", "qat_fakequant"}, rows.keys()
for k, x in rows.items():
    # A sanity floor (2 short epochs on 2700 images), not a target.
    assert x["examples"] == 10000 and 0.8 < x["accuracy"] <= 1.0, (k, x)
print("ok: report rows", {k: round(x["accuracy"], 4) for k, x in rows.items()})
PY
"$QATC" eval "$OUT/qat.ckpt" --json >"$WORK/eval.json" && grep -q '"kind": "fakequant"' "$WORK/eval.json" &&
  echo "ok: eval runs the fake-quant model" || { echo "FAIL: eval of qat.ckpt"; failures=$((failures + 1)); }

# A killed QAT resumes to the same weights: stop after the step-10 state by truncating steps.
cp "$OUT/qat.ckpt" "$WORK/qat_full.ckpt"
expect 0 '' -- "$QATC" --threads 1 qat "$R" --out "$OUT" --set qat.steps=5
expect 0 '' -- "$QATC" --threads 1 qat "$R" --out "$OUT" --resume
cmp -s "$OUT/qat.ckpt" "$WORK/qat_full.ckpt" && echo "ok: resumed QAT equals the uninterrupted run" ||
  { echo "FAIL: resumed QAT differs"; failures=$((failures + 1)); }

# Bad inputs.
expect 2 "--resume: no QAT state" -- "$QATC" qat "$R" --out "$WORK/empty" --from "$OUT/float.ckpt" --resume
expect 2 "made for a different model" -- "$QATC" qat "$R" --out "$WORK/other" --from "$OUT/float.ckpt" --set model.layers.0.filters=4
expect 2 "is not a float model checkpoint" -- "$QATC" ptq "$R" --out "$WORK/other" --from "$OUT/qat.ckpt"
expect 2 "quant override match 'nosuch' matches no layer" -- "$QATC" ptq "$R" --out "$WORK/other" --set 'quant.overrides=[{match: nosuch, skip: true}]'
expect 2 "'quant.weights.bits' is 1, must be in \[2, 8\]" -- "$QATC" ptq "$R" --out "$WORK/other" --set quant.weights.bits=1
expect 2 "matches layer 'bn', which is fused into 'conv'" -- "$QATC" ptq "$R" --out "$WORK/other" --set 'quant.overrides=[{match: bn, skip: true}]'
expect 2 "only conv2d and dense layers can stay in float" -- "$QATC" ptq "$R" --out "$WORK/other" --set 'quant.overrides=[{match: maxpool_3, skip: true}]'
no_files "$WORK/other"
no_files "$WORK/empty"
finish
