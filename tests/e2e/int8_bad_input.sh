#!/usr/bin/env bash
# Bad int8 model files and conversion inputs: one line, exit 2.
set -uo pipefail
source "$(dirname "$0")/lib.bash"
R=$WORK/r.yaml
cat >"$R" <<'YAML'
name: e2e_int8
stages: [train, ptq, convert]
data: {dataset: mnist, train_subset: 600}
model:
  input: [28, 28, 1]
  layers:
    - {type: conv2d, name: conv, filters: 4, kernel: 3, activation: relu}
    - {type: maxpool, pool: 2}
    - {type: flatten}
    - {type: dense, name: logits, units: 10}
train: {epochs: 1, batch_size: 100}
ptq: {batches: 2, batch_size: 100}
YAML
OUT=$WORK/run
expect 0 '' -- "$QATC" run "$R" --out "$OUT"
M=$OUT/ptq.int8
expect 0 '' -- "$QATC" eval "$M"
head -c 300 "$M" >"$WORK/trunc.int8"
expect 2 "trunc.int8: (truncated|checksum)" -- "$QATC" eval "$WORK/trunc.int8"
python3 - "$M" "$WORK" <<'PY'
import struct, sys, zlib
b = bytearray(open(sys.argv[1], 'rb').read())
f = bytearray(b); f[len(f) // 2] ^= 0x01
open(sys.argv[2] + '/flip.int8', 'wb').write(f)
n = bytearray(b); n[8:12] = struct.pack('<I', 7); n[-4:] = struct.pack('<I', zlib.crc32(bytes(n[:-4])))
open(sys.argv[2] + '/newer.int8', 'wb').write(n)
PY
expect 2 "flip.int8: checksum mismatch" -- "$QATC" eval "$WORK/flip.int8"
expect 2 "newer.int8: int8 model format version 7 is newer than this qatc reads" -- "$QATC" eval "$WORK/newer.int8"
expect 2 "flip.int8: checksum mismatch" -- "$QATC" inspect "$WORK/flip.int8"
expect 2 "float.ckpt: not a quantized checkpoint" -- "$QATC" convert "$OUT/float.ckpt" -o "$WORK/x.int8"
# Input images of the wrong shape (14x14) for a 28x28 model.
mkdir -p "$WORK/small"
python3 - "$WORK/small" <<'PY'
import struct, sys
d = sys.argv[1]
for split, n in (("t10k", 20), ("train", 20)):
    open(f"{d}/{split}-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x803, n, 14, 14) + bytes(n * 196))
    open(f"{d}/{split}-labels-idx1-ubyte", "wb").write(struct.pack(">II", 0x801, n) + bytes(n))
PY
expect 2 "14" -- "$QATC" eval "$M" --data-path "$WORK/small"
[[ ! -e $WORK/x.int8 ]] && echo "ok: no model written" || { echo "FAIL: x.int8 written"; failures=$((failures + 1)); }
finish
