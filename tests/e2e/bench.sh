#!/usr/bin/env bash
# qatc bench: the JSON contract, every form in its own process, and bad input.
set -uo pipefail
source "$(dirname "$0")/lib.bash"

out=$("$QATC" --json bench "$SRC/recipes/mnist/tfmot_cnn.yaml" --seconds 0.2 --runs 5)
if python3 - "$out" <<'PY'
import json, sys
j = json.loads(sys.argv[1])
forms = [r["model"] for r in j["results"]]
assert forms == ["float", "fakequant", "int8"], forms
for r in j["results"]:
    for k in ("batch", "threads", "latency_ms_median", "latency_ms_p90", "images_per_s", "peak_rss_bytes"):
        assert k in r, (r["model"], k)
    assert r["latency_ms_median"] > 0 and r["latency_ms_p90"] >= r["latency_ms_median"], r
    assert r["peak_rss_bytes"] > 0, r
PY
then echo "ok: bench --json"; else echo "FAIL: bench --json: $out"; failures=$((failures + 1)); fi
expect 0 '' -- "$QATC" --kernels ref bench "$SRC/recipes/mnist/tfmot_cnn.yaml" --form int8 --seconds 0.1 --runs 5 --batch 4
expect 2 "--kernels avx9: unknown; expected one of: opt, ref" -- "$QATC" --kernels avx9 bench "$SRC/recipes/mnist/tfmot_cnn.yaml"
expect 2 "nosuch.yaml: file not found" -- "$QATC" bench "$WORK/nosuch.yaml"
expect 2 "cannot time it as 'float8'; it times as: float, fakequant, int8" -- "$QATC" bench "$SRC/recipes/mnist/tfmot_cnn.yaml" --form float8
finish
