"""Cross-checks qatc's float training against PyTorch, step for step, on the same weights and batches.

qatc trains a recipe for a few steps with shuffling off (so both sides see the same batches in the
same order); the script reads qatc's initial weights from a zero-learning-rate run, loads them into the
PyTorch twin of the model (bench/torch_models.py: Keras' Adam epsilon and BatchNorm eps/momentum),
trains the same steps and compares every parameter tensor afterwards. Float sums run in different orders
on the two sides, so the weights agree to float rounding that grows slowly with the steps, not bit for
bit; a wrong gradient, optimizer or schedule shows up as a difference orders of magnitude larger.

    /usr/bin/python3 bench/crosscheck_train.py recipes/mnist/cnn_bn.yaml --steps 20
Exit code 0 when every tensor's max |qatc - torch| / max |torch| is below --tolerance, else 1.
"""

import argparse
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import torch_models  # noqa: E402
import train_speed  # noqa: E402  (spec_for_recipe: the recipe's name -> the twin's settings)


def read_checkpoint(path):
    """{parameter name: numpy array} from a qatc checkpoint (lib/core/container.h, lib/train/checkpoint.cpp)."""
    data = open(path, "rb").read()
    if data[:8] != b"QATCCKPT":
        raise ValueError(f"{path}: not a qatc checkpoint")
    _version, count = struct.unpack_from("<II", data, 8)
    pos, sections = 16, {}
    for _ in range(count):
        tag = data[pos:pos + 4].decode()
        (length,) = struct.unpack_from("<Q", data, pos + 4)
        sections[tag] = data[pos + 12:pos + 12 + length]
        pos += 12 + length
    table, ptab = [], sections["PTAB"]
    (n,) = struct.unpack_from("<Q", ptab, 0)
    p = 8
    for _ in range(n):
        (ln,) = struct.unpack_from("<Q", ptab, p)
        name = ptab[p + 8:p + 8 + ln].decode()
        p += 8 + ln
        (nd,) = struct.unpack_from("<Q", ptab, p)
        shape = struct.unpack_from(f"<{nd}q", ptab, p + 8)
        p += 8 + 8 * nd
        table.append((name, shape))
    (nf,) = struct.unpack_from("<Q", sections["PRMS"], 0)
    flat = np.frombuffer(sections["PRMS"], dtype="<f4", count=nf, offset=8)
    out, off = {}, 0
    for name, shape in table:
        size = int(np.prod(shape)) if shape else 1
        out[name] = flat[off:off + size].reshape(shape).copy()
        off += size
    return out


def torch_params(model, input_hw):
    """The parameter-holding modules of the twin built by torch_models.build_model, in order, as
    ("conv", module), ("bn", module) or ("dense", module, (h, w, c) of a Flatten right before it, else None).
    They pair up in order with qatc's parameter layers (qatc_names); the first Linear after a Flatten needs
    its rows reordered from NHWC to NCHW flattening."""
    import torch.nn as nn
    h, w = input_hw
    c_last, pairs, flatten_hwc = None, [], None
    for m in model:
        if isinstance(m, nn.Conv2d):
            pairs.append(("conv", m))
            c_last = m.out_channels
            if m.padding == (0, 0):
                h, w = h - m.kernel_size[0] + 1, w - m.kernel_size[1] + 1
        elif isinstance(m, nn.MaxPool2d):
            h, w = h // m.kernel_size, w // m.kernel_size
        elif isinstance(m, nn.Flatten):
            flatten_hwc = (h, w, c_last)
        elif isinstance(m, nn.BatchNorm2d):
            pairs.append(("bn", m))
        elif isinstance(m, nn.Linear):
            pairs.append(("dense", m, flatten_hwc))
            flatten_hwc = None
    return pairs


def qatc_names(ckpt):
    """Parameter names grouped per qatc layer, in file order: [(layer, {suffix: name})]."""
    layers = []
    for name in ckpt:
        layer, suffix = name.rsplit("/", 1)
        if not layers or layers[-1][0] != layer:
            layers.append((layer, {}))
        layers[-1][1][suffix] = name
    return layers


def dense_rows_nhwc_to_nchw(hwc):
    """Index array: torch column j (NCHW flatten) takes qatc row perm[j] (NHWC flatten)."""
    h, w, c = hwc
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


def load_into_torch(model, ckpt, input_hw, moving=False):
    import torch
    pairs, layers = torch_params(model, input_hw), qatc_names(ckpt)
    if len(pairs) != len(layers):
        raise ValueError(f"qatc has {len(layers)} parameter layers, the torch twin {len(pairs)}")
    with torch.no_grad():
        for pair, (_layer, names) in zip(pairs, layers):
            kind, m = pair[0], pair[1]
            if kind == "conv":  # qatc [kh, kw, in, out] -> torch [out, in, kh, kw]
                m.weight.copy_(torch.from_numpy(ckpt[names["kernel"]].transpose(3, 2, 0, 1).copy()))
            elif kind == "bn":
                m.weight.copy_(torch.from_numpy(ckpt[names["gamma"]]))
                m.bias.copy_(torch.from_numpy(ckpt[names["beta"]]))
                if moving:
                    m.running_mean.copy_(torch.from_numpy(ckpt[names["moving_mean"]]))
                    m.running_var.copy_(torch.from_numpy(ckpt[names["moving_variance"]]))
                else:
                    m.running_mean.zero_()
                    m.running_var.fill_(1.0)
            else:  # dense [in, out] -> Linear [out, in]
                k = ckpt[names["kernel"]]
                if pair[2] is not None:
                    k = k[dense_rows_nhwc_to_nchw(pair[2])]
                m.weight.copy_(torch.from_numpy(k.T.copy()))
            if kind != "bn" and m.bias is not None:
                m.bias.copy_(torch.from_numpy(ckpt[names["bias"]]))
    return pairs, layers


def torch_as_qatc(pairs, layers):
    """{qatc name: numpy array} of the torch model's current parameters, in qatc's layouts."""
    out = {}
    for pair, (_layer, names) in zip(pairs, layers):
        kind, m = pair[0], pair[1]
        if kind == "conv":
            out[names["kernel"]] = m.weight.detach().numpy().transpose(2, 3, 1, 0)
        elif kind == "bn":
            out[names["gamma"]] = m.weight.detach().numpy()
            out[names["beta"]] = m.bias.detach().numpy()
            out[names["moving_mean"]] = m.running_mean.numpy()
            out[names["moving_variance"]] = m.running_var.numpy()
        else:
            k = m.weight.detach().numpy().T
            if pair[2] is not None:
                back = np.empty_like(k)
                back[dense_rows_nhwc_to_nchw(pair[2])] = k
                k = back
            out[names["kernel"]] = k
        if kind != "bn" and m.bias is not None:
            out[names["bias"]] = m.bias.detach().numpy()
    return out


class Sgd:
    def __init__(self, params):
        self.params = [p for p in params]

    def step(self, lr):
        import torch
        with torch.no_grad():
            for p in self.params:
                p.sub_(lr * p.grad)
                p.grad = None


def run_qatc(qatc, recipe, out, images, extra, threads=2):
    cmd = [qatc, "train", recipe, "--out", out, "--threads", str(threads),
           "--set", "train.epochs=1", "--set", "train.shuffle=false", "--set", "data.validation_split=0",
           "--set", f"data.train_subset={images}"] + [a for kv in extra for a in ("--set", kv)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return read_checkpoint(os.path.join(out, "float.ckpt"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", help="a qatc recipe that bench/torch_models.py has a twin for")
    ap.add_argument("--qatc", default="build/qatc")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--tolerance", type=float, default=1e-3,
                    help="largest accepted max|qatc - torch| / max|torch| per tensor (default: %(default)s)")
    ap.add_argument("--sgd", action="store_true",
                    help="both sides use plain SGD at the recipe's lr instead of Adam, so the weight change after one "
                         "step is the gradient itself (Adam's first step is lr * sign(g) and hides its size)")
    ap.add_argument("--threads", type=int, default=2, help="qatc --threads and torch.set_num_threads")
    ap.add_argument("--float64", action="store_true",
                    help="run the PyTorch side in float64, to see which side's rounding a difference comes from")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    spec = train_speed.spec_for_recipe(args.recipe)
    bs, steps = spec["batch_size"], args.steps
    with tempfile.TemporaryDirectory() as tmp:
        init = run_qatc(args.qatc, args.recipe, os.path.join(tmp, "init"), bs, ["train.optimizer.lr=0"],
                        args.threads)
        trained = run_qatc(args.qatc, args.recipe, os.path.join(tmp, "trained"), bs * steps,
                           ["train.optimizer.type=sgd"] if args.sgd else [], args.threads)

    model = torch_models.build_model(spec["arch"])
    if args.float64:
        model = model.double()
    pairs, layers = load_into_torch(model, init, (28, 28))
    data = torch_models.load_dataset(spec["dataset"])
    x = torch.from_numpy(data["train"][0][:bs * steps].astype(np.float32) / np.float32(255.0)).unsqueeze(1)
    if args.float64:
        x = x.double()
    y = torch.from_numpy(data["train"][1][:bs * steps].astype(np.int64))
    opt = torch_models.KerasAdam(model.parameters(), lr=spec["lr"], eps=torch_models.ADAM_EPS)
    if args.sgd:
        opt = Sgd(model.parameters())
    model.train()
    for s in range(steps):
        lr = torch_models.cosine_lr(spec["lr"], s, steps) if spec["schedule"] == "cosine" else spec["lr"]
        F.cross_entropy(model(x[s * bs:(s + 1) * bs]), y[s * bs:(s + 1) * bs]).backward()
        opt.step(lr)
    ref = torch_as_qatc(pairs, layers)

    worst = 0.0
    print(f"{args.recipe}: {steps} steps of batch {bs}, max|qatc - torch| / max|torch| per tensor")
    for name, want in ref.items():
        got = trained[name]
        scale = max(float(np.abs(want).max()), 1e-12)
        rel = float(np.abs(got - want).max()) / scale
        moved = float(np.abs(want - init[name]).max()) / scale if "moving" not in name else float("nan")
        worst = max(worst, rel)
        print(f"  {name:28s} {rel:.2e}   (moved by training: {moved:.2e})")
    x_test, y_test = data["test"]
    x_test = torch.from_numpy(x_test.astype(np.float32) / np.float32(255.0)).unsqueeze(1).to(x.dtype)
    y_test = torch.from_numpy(y_test.astype(np.int64))
    as_trained = torch_models.build_model(spec["arch"]).to(x.dtype)
    load_into_torch(as_trained, trained, (28, 28), moving=True)
    for who, m in (("qatc", as_trained), ("torch", model)):
        loss, acc = torch_models.evaluate(m, x_test, y_test)
        print(f"test set, {who}'s weights: loss {loss:.4f}, accuracy {100 * acc:.2f}%")
    ok = worst <= args.tolerance
    print(f"worst {worst:.2e}: {'agree' if ok else 'DIFFER'} (tolerance {args.tolerance:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
