#!/usr/bin/env bash
# Runs the Fashion-MNIST stand-ins of the ImageNet families (recipes/fashion/{mobilenet_v1,
# mobilenet_v2, resnet_v1, resnet_v2, nasnet}.yaml) end to end, then a per-tensor PTQ of each
# float model, and prints the table of docs/results/standins.md.
#   scripts/standins.sh [OUT_DIR] [FAMILY...]     (default OUT_DIR: runs/standins)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
qatc="$here/build/qatc"
out="${1:-runs/standins}"
shift || true
families=("$@")
[ ${#families[@]} -eq 0 ] && families=(mobilenet_v1 mobilenet_v2 resnet_v1 resnet_v2 nasnet)
mkdir -p "$out"
for f in "${families[@]}"; do
  recipe="$here/recipes/fashion/$f.yaml"
  if [ ! -f "$out/$f/report.json" ]; then  # a finished run is kept
    start=$(date +%s)
    "$qatc" run "$recipe" --out "$out/$f" > "$out/$f.log" 2>&1
    echo "$f: full run $(( $(date +%s) - start )) s" | tee -a "$out/times.txt"
  fi
  # Per-tensor weights, PTQ only, from the same float model.
  "$qatc" run "$recipe" --out "$out/${f}_per_tensor" --from "$out/$f/float.ckpt" \
    --set 'stages=[ptq,convert,eval,report]' --set quant.weights.granularity=per_tensor \
    > "$out/${f}_per_tensor.log" 2>&1
done
python3 - "$out" "${families[@]}" <<'PY'
import json, sys
out, fams = sys.argv[1], sys.argv[2:]
print("| family | float | PTQ int8 | QAT int8 | QAT int8 - float | PTQ int8, per-tensor weights | int8 == fake-quant top-1 (PTQ / QAT) |")
print("|---|---|---|---|---|---|---|")
for f in fams:
    rows = {r["model"]: r for r in json.load(open(f"{out}/{f}/report.json"))["results"]}
    pt = {r["model"]: r for r in json.load(open(f"{out}/{f}_per_tensor/report.json"))["results"]}
    acc = lambda d, k: 100 * d[k]["accuracy"]
    agr = lambda k: 100 * rows[k].get("agreement_with_fakequant", {}).get("top1", float("nan"))
    print(f"| {f} | {acc(rows,'float'):.2f}% | {acc(rows,'ptq_int8'):.2f}% | {acc(rows,'qat_int8'):.2f}% | "
          f"{acc(rows,'qat_int8') - acc(rows,'float'):+.2f} | {acc(pt,'ptq_int8'):.2f}% | {agr('ptq_int8'):.2f}% / {agr('qat_int8'):.2f}% |")
PY
