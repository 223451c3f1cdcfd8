#!/usr/bin/env bash
# The Quickstart's main job end to end: recipes/mnist/tfmot_cnn.yaml (train, ptq, qat, convert,
# eval, report) on the real MNIST, checked against the contract of report.json and the
# simulated == integer promise.
set -uo pipefail
source "$(dirname "$0")/lib.bash"
OUT=$WORK/run
expect 0 '' -- "$QATC" run "$SRC/recipes/mnist/tfmot_cnn.yaml" --out "$OUT"
python3 - "$OUT" <<'PY' || failures=$((failures + 1))
import json, os, sys
out = sys.argv[1]
r = json.load(open(os.path.join(out, "report.json")))
assert r["recipe"] == "tfmot_cnn" and r["dataset"]["name"] == "mnist", r["dataset"]
rows = {x["model"]: x for x in r["results"]}
assert set(rows) == {"float", "ptq_fakequant", "qat_fakequant", "ptq_int8", "qat_int8"}, rows.keys()
f, q = rows["float"], rows["qat_int8"]
for x in rows.values():
    assert x["examples"] == 10000 and x["size_bytes"] > 0 and x["latency_ms_batch1"] > 0, x
# Regression floors of this recipe (measured 95.5-96.0% float over seeds; see docs/results/mnist.md).
assert f["accuracy"] >= 0.95, f
assert q["accuracy"] >= f["accuracy"] - 0.005, (q, f)
# Simulated == integer: the int8 engine against the fake-quant model it came from.
for k in ("ptq_int8", "qat_int8"):
    a = rows[k]["agreement_with_fakequant"]
    assert a["top1"] >= 0.999 and a["within_one_step"] >= 0.99, (k, a)
# The int8 file against the float model file.
assert q["size_bytes"] <= 0.27 * f["size_bytes"], (q["size_bytes"], f["size_bytes"])
html = open(os.path.join(out, "report.html")).read()
assert "<svg" in html and "http://" not in html and "https://" not in html
assert any(l.get("weight_sqnr_db", 0) > 20 for l in rows["qat_fakequant"]["layers"])
print("ok: report contract, agreement", rows["qat_int8"]["agreement_with_fakequant"],
      "size ratio %.3f" % (q["size_bytes"] / f["size_bytes"]))
PY
# The gate: an impossible threshold fails the run with exit 1 after the report is written.
rm -f "$OUT/report.json"
expect 1 "gate failed" -- "$QATC" run "$SRC/recipes/mnist/tfmot_cnn.yaml" --out "$OUT" --set 'stages=[eval, report]' --max-accuracy-drop 0
[[ -f $OUT/report.json ]] && echo "ok: report written before the gate failed" || { echo "FAIL: no report"; failures=$((failures + 1)); }
expect 0 '' -- "$QATC" eval "$OUT/qat.int8" --max-accuracy-drop 0.01
expect 2 "baseline .* not found" -- "$QATC" eval "$OUT/qat.int8" --max-accuracy-drop 0.01 --baseline "$WORK/none.ckpt"
"$QATC" --json inspect "$OUT/qat.int8" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["params"]==20410 and j["macs"]==93288, j; print("ok: inspect")' ||
  failures=$((failures + 1))
finish
