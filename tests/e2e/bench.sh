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
    assert 0 < r["latency_ms_min"] <= r["latency_ms_median"] <= r["latency_ms_p90"], r
    assert r["peak_rss_bytes"] > 0, r
PY
then echo "ok: bench --json"; else echo "FAIL: bench --json: $out"; failures=$((failures + 1)); fi
# --profile: every layer of the int8 model timed; MobileNet's stride-2 Pads fused into the
# depthwise convs after them (no time of their own), the shares summing to one.
out=$("$QATC" --json bench "$SRC/recipes/imagenet/mobilenet_v1_224.yaml" --set model.alpha=0.25 \
      --set 'model.input=[128, 128, 3]' --form int8 --profile --seconds 0.1 --runs 5)
if python3 - "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1])["results"][0]
layers = r["layers"]
assert layers[0]["name"] == "input" and len(layers) == 35, [l["name"] for l in layers]
assert [l["name"] for l in layers if l["fused"]] == ["conv_pad_2", "conv_pad_4", "conv_pad_6", "conv_pad_12"], layers
assert all(l["ms_median"] == 0 for l in layers if l["fused"]), layers
assert all(l["ms_median"] > 0 and l["macs"] > 0 and l["gmacs_per_s"] > 0 for l in layers if "conv" in l["op"]), layers
assert abs(sum(l["share"] for l in layers) - 1) < 1e-9, layers
PY
then echo "ok: bench --profile"; else echo "FAIL: bench --profile: $out"; failures=$((failures + 1)); fi
out=$("$QATC" bench "$SRC/recipes/mnist/tfmot_cnn.yaml" --form int8 --profile --seconds 0.1 --runs 5 2>&1)
if grep -q 'GMAC/s' <<<"$out" && grep -Eq '^  conv +conv2d +\[26,26,12\] +73008 ' <<<"$out"; then echo "ok: bench --profile table"
else echo "FAIL: bench --profile table: $out"; failures=$((failures + 1)); fi
# int8_file_bench RECIPE PAIR: the int8 model --save-int8 writes for RECIPE, timed as a file at
# 1 thread: its size, largest activation pair (PAIR bytes), memory bound (docs/performance.md),
# and a peak memory within it.
int8_file_bench() {
  local model=$WORK/$(basename "$1" .yaml).int8 out
  expect 0 '' -- "$QATC" bench "$1" --save-int8 "$model"
  out=$("$QATC" --threads 1 --json bench "$model" --seconds 0.1 --runs 5)
  if python3 - "$out" "$(stat -c %s "$model")" "$2" <<'PY'
import json, sys
r = json.loads(sys.argv[1])["results"][0]
assert r["model"] == "int8" and r["model_file_bytes"] == int(sys.argv[2]), r
assert r["largest_activation_pair_bytes"] == int(sys.argv[3]), r
assert r["memory_bound_bytes"] == 3 * (r["model_file_bytes"] + r["largest_activation_pair_bytes"]) // 2, r
assert 0 < r["peak_rss_above_start_bytes"] <= r["memory_bound_bytes"], r
PY
  then echo "ok: bench of $model"; else echo "FAIL: bench of $model: $out"; failures=$((failures + 1)); fi
}
int8_file_bench "$SRC/recipes/imagenet/resnet50_v1.yaml" $((3 * 56 * 56 * 256))  # a residual add: 2 inputs, 1 output
int8_file_bench "$SRC/recipes/imagenet/nasnet_mobile.yaml" 832320  # 58k channels in 473 layers: per-channel memory
expect 0 '' -- "$QATC" --kernels ref bench "$SRC/recipes/mnist/tfmot_cnn.yaml" --form int8 --seconds 0.1 --runs 5 --batch 4
expect 2 "--kernels avx9: unknown; expected one of: opt, ref" -- "$QATC" --kernels avx9 bench "$SRC/recipes/mnist/tfmot_cnn.yaml"
expect 2 "nosuch.yaml: file not found" -- "$QATC" bench "$WORK/nosuch.yaml"
expect 2 "cannot time it as 'float8'; it times as: float, fakequant, int8" -- "$QATC" bench "$SRC/recipes/mnist/tfmot_cnn.yaml" --form float8
finish
