"""PyTorch twins of qatc's MNIST recipes (tfmot_cnn, cnn_bn), trained the Keras way, for bench/train_speed.py.

Run as a script it is the fresh-process worker that train_speed.py starts: it trains one model and
prints one JSON line. It can also be run by hand, e.g.
    /usr/bin/python3 bench/torch_models.py --recipe tfmot_cnn --seed 1 --init torch --threads 2
"""

import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import numpy as np

# Where qatc finds the data (see datasets/*/fetch.sh and lib/data/catalog.cpp).
DATA_DIRS = {
    "mnist": ["/root/.cache/qatc/mnist", "/usr/share/datasets/mnist"],
    "fashion_mnist": ["/root/.cache/qatc/fashion_mnist", "/usr/share/datasets/fashion-mnist"],
}

# What each qatc recipe (by its `name:`) trains. train_speed.py checks these against the recipe file, so a
# recipe edited without this table fails loudly instead of benchmarking a different model.
SPECS = {
    "tfmot_cnn": dict(arch="tfmot_cnn", dataset="mnist", batch_size=32, lr=1e-3, schedule="constant",
                      epochs=1, validation_split=0.1),
    "mnist_cnn_bn": dict(arch="cnn_bn", dataset="mnist", batch_size=128, lr=1e-3, schedule="cosine",
                         epochs=8, validation_split=0.1),
    "fashion_cnn_bn": dict(arch="cnn_bn", dataset="fashion_mnist", batch_size=128, lr=1e-3, schedule="cosine",
                           epochs=8, validation_split=0.1),
}

# The layer list of each architecture as (type, filters_or_units, kernel, padding, use_bias, activation),
# the same normal form train_speed.py builds from a recipe's model.layers.
ARCH_LAYERS = {
    "tfmot_cnn": [
        ("conv2d", 12, 3, "valid", True, "relu"),
        ("maxpool", 2), ("flatten",),
        ("dense", 10, None, None, True, "none"),
    ],
    "cnn_bn": [
        ("conv2d", 32, 3, "same", False, "none"), ("batchnorm",), ("relu",),
        ("conv2d", 32, 3, "same", False, "none"), ("batchnorm",), ("relu",),
        ("maxpool", 2),
        ("conv2d", 64, 3, "same", False, "none"), ("batchnorm",), ("relu",),
        ("conv2d", 64, 3, "same", False, "none"), ("batchnorm",), ("relu",),
        ("maxpool", 2), ("flatten",),
        ("dense", 128, None, None, True, "relu"),
        ("dense", 10, None, None, True, "none"),
    ],
}

ADAM_EPS = 1e-7  # Keras' default; torch's is 1e-8
BN_EPS = 1e-3    # Keras' default; torch's is 1e-5
BN_MOMENTUM = 0.01  # torch convention (weight of the new batch) = Keras momentum 0.99


def read_idx(path):
    """Reads an IDX file (plain or .gz) into a numpy array of its stored dtype and shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise ValueError(f"{path}: unknown IDX element type 0x{data[2]:02x}")
    ndim = data[3]
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=dtypes[data[2]], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {arr.size} elements but the header says {shape}")
    return arr.reshape(shape)


def find_idx(dataset, stem, data_dir=None):
    dirs = [data_dir] if data_dir else DATA_DIRS[dataset]
    for d in dirs:
        for name in (stem, stem + ".gz"):
            p = os.path.join(d, name)
            if os.path.exists(p):
                return p
    raise FileNotFoundError(f"{dataset}: no {stem}[.gz] in {', '.join(dirs)}; pass --data-dir")


def load_dataset(dataset, data_dir=None):
    """{'train': (images uint8 [N,28,28], labels int64 [N]), 'test': (...)}"""
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(find_idx(dataset, f"{prefix}-images-idx3-ubyte", data_dir))
        y = read_idx(find_idx(dataset, f"{prefix}-labels-idx1-ubyte", data_dir)).astype(np.int64)
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{dataset} {split}: {x.shape[0]} images but {y.shape[0]} labels")
        out[split] = (x, y)
    return out


def build_model(arch, init="keras"):
    """The recipe's model in NCHW. init='keras': Glorot-uniform kernels, zero biases (Keras defaults);
    init='torch': PyTorch's own defaults (Kaiming-uniform with a=sqrt(5), fan-in-uniform biases).
    BatchNorm always uses Keras' eps and momentum, gamma 1, beta 0."""
    import torch.nn as nn

    if arch == "tfmot_cnn":
        model = nn.Sequential(
            nn.Conv2d(1, 12, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(12 * 13 * 13, 10))
    elif arch == "cnn_bn":
        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                    nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM), nn.ReLU()]
        model = nn.Sequential(
            *block(1, 32), *block(32, 32), nn.MaxPool2d(2),
            *block(32, 64), *block(64, 64), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    else:
        raise ValueError(f"unknown architecture {arch!r}")
    if init == "keras":
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                # torch's fans for [out, in, kh, kw] are in*kh*kw and out*kh*kw: the same as Keras' for
                # [kh, kw, in, out], so the Glorot limit sqrt(6 / (fan_in + fan_out)) is the same.
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    elif init != "torch":
        raise ValueError(f"unknown init {init!r} (keras or torch)")
    return model


class KerasAdam:
    """Adam in Keras' form, as qatc implements it (lib/train/optimizer.cpp): the bias corrections go into the
    step size and epsilon is added to sqrt(v) unscaled, so eps acts like eps / sqrt(1 - beta2^t) in
    torch.optim.Adam's form. The two differ for gradients near eps (most in the first steps), which would hide
    a real bug behind the optimizer's convention."""

    def __init__(self, params, lr, eps, beta1=0.9, beta2=0.999):
        import torch
        self.params = [p for p in params]
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.lr, self.eps, self.b1, self.b2, self.t = lr, eps, beta1, beta2, 0

    def step(self, lr):
        import torch
        self.t += 1
        alpha = lr * (1 - self.b2 ** self.t) ** 0.5 / (1 - self.b1 ** self.t)
        with torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v):
                m.mul_(self.b1).add_(p.grad, alpha=1 - self.b1)
                v.mul_(self.b2).addcmul_(p.grad, p.grad, value=1 - self.b2)
                p.sub_(alpha * m / (v.sqrt() + self.eps))
                p.grad = None


def cosine_lr(base, step, total_steps):
    """qatc's cosine schedule (no warmup, min_lr 0): per step, base at step 0 down towards 0."""
    progress = min(1.0, step / max(1, total_steps))
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


def evaluate(model, x, y, batch=1000):
    """(mean loss, accuracy) in inference mode (BatchNorm uses its moving statistics)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for b in range(0, x.shape[0], batch):
            logits = model(x[b:b + batch])
            loss_sum += F.cross_entropy(logits, y[b:b + batch], reduction="sum").item()
            correct += (logits.argmax(1) == y[b:b + batch]).sum().item()
    model.train()
    return loss_sum / x.shape[0], correct / x.shape[0]


# OpenBLAS cores that are its generic fallbacks when it does not recognize the CPU (same list as
# lib/core/blas_env.cpp).
OPENBLAS_FALLBACK_CORES = {"Prescott", "Core2", "Penryn", "Nehalem", "Dunnington", "Atom", "Katmai", "Unknown"}


def openblas_core():
    """The kernel family of the OpenBLAS that torch's BLAS calls (dense layers) go to, or None when torch's
    BLAS is not OpenBLAS. Call after importing torch, so that this is the library torch loaded."""
    import ctypes
    for name in ("libblas.so.3", "libopenblas.so.0"):
        try:
            fn = ctypes.CDLL(name).openblas_get_corename
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_char_p
        return fn().decode()
    return None


def environment():
    import torch
    return {
        "openblas_core": openblas_core(),
        "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
        "torch_version": torch.__version__,
        "mkldnn_available": bool(torch.backends.mkldnn.is_available()),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "mkl_available": bool(torch.backends.mkl.is_available()),
        "torch_threads": torch.get_num_threads(),
        "parallel_info": torch.__config__.parallel_info().strip().splitlines()[:4],
    }


def train(spec, *, epochs, threads, seed=0, init="keras", adam="torch", mkldnn=True, data_dir=None, log=None):
    """Trains spec's model the way qatc's recipe does; returns a JSON-able dict with per-epoch timings."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn
    torch.manual_seed(seed)
    data = load_dataset(spec["dataset"], data_dir)
    x_all, y_all = data["train"]
    # Keras' validation_split: the LAST fraction of the training set is held out, before any shuffling.
    split_at = int(x_all.shape[0] * (1.0 - spec["validation_split"]))

    def tensors(x, y):
        return (torch.from_numpy(x.astype(np.float32) / np.float32(255.0)).unsqueeze(1).contiguous(),
                torch.from_numpy(y))

    x_train, y_train = tensors(x_all[:split_at], y_all[:split_at])
    x_val, y_val = tensors(x_all[split_at:], y_all[split_at:])
    x_test, y_test = tensors(*data["test"])

    model = build_model(spec["arch"], init)
    if adam == "keras":
        opt = KerasAdam(model.parameters(), lr=spec["lr"], eps=ADAM_EPS)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=spec["lr"], betas=(0.9, 0.999), eps=ADAM_EPS)
    n, bs = x_train.shape[0], spec["batch_size"]
    steps_per_epoch = (n + bs - 1) // bs  # the last, partial batch is kept, as in Keras and qatc
    total_steps = steps_per_epoch * epochs
    shuffle = torch.Generator().manual_seed(seed)
    result = {"arch": spec["arch"], "dataset": spec["dataset"], "init": init, "seed": seed, "threads": threads,
              "batch_size": bs, "steps_per_epoch": steps_per_epoch, "epochs": []}
    result.update(environment())
    model.train()
    step = 0
    for epoch in range(epochs):
        order = torch.randperm(n, generator=shuffle)
        loss_acc, corr_acc = torch.zeros(()), torch.zeros((), dtype=torch.int64)
        t0 = time.perf_counter()
        for s in range(steps_per_epoch):
            idx = order[s * bs:(s + 1) * bs]
            xb, yb = x_train[idx], y_train[idx]
            lr = cosine_lr(spec["lr"], step, total_steps) if spec["schedule"] == "cosine" else spec["lr"]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            if adam == "keras":
                loss.backward()
                opt.step(lr)
            else:
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            # Running sums stay on the tensor side: a .item() per step would add a sync point qatc does not have.
            with torch.no_grad():
                loss_acc += loss.detach() * idx.numel()
                corr_acc += (logits.argmax(1) == yb).sum()
            step += 1
        seconds = time.perf_counter() - t0
        loss_sum, correct = loss_acc.item(), corr_acc.item()
        val_loss, val_acc = evaluate(model, x_val, y_val)
        row = {"epoch": epoch + 1, "seconds": seconds, "images_per_s": n / seconds, "loss": loss_sum / n,
               "accuracy": correct / n, "val_loss": val_loss, "val_accuracy": val_acc}
        result["epochs"].append(row)
        if log:
            print(f"torch {spec['arch']} epoch {epoch + 1}: {seconds:.2f} s, loss {row['loss']:.4f}, "
                  f"val_acc {100 * val_acc:.2f}%", file=log, flush=True)
    result["test_loss"], result["test_accuracy"] = evaluate(model, x_test, y_test)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", choices=sorted(SPECS), help="which qatc recipe to mirror")
    ap.add_argument("--epochs", type=int, help="default: the recipe's (the cosine schedule spans these epochs)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", choices=["keras", "torch"], default="keras")
    ap.add_argument("--adam", choices=["keras", "torch"], default="torch",
                    help="torch (default; what users run and what train_speed.py times): torch.optim.Adam. keras: Adam "
                         "in Keras' and qatc's form (epsilon added to sqrt(v), bias corrections in the step size), a "
                         "slower Python loop")
    ap.add_argument("--no-mkldnn", action="store_true", help="torch.backends.mkldnn.enabled = False")
    ap.add_argument("--data-dir", help="folder with the four IDX files (default: where qatc looks)")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON line on stdout")
    ap.add_argument("--info", action="store_true", help="print the torch environment as JSON and exit")
    args = ap.parse_args()
    if args.info:
        print(json.dumps(environment()))
        return 0
    if not args.recipe:
        ap.error("--recipe is required")
    spec = SPECS[args.recipe]
    epochs = args.epochs or spec["epochs"]
    res = train(spec, epochs=epochs, threads=args.threads, seed=args.seed, init=args.init, adam=args.adam,
                mkldnn=not args.no_mkldnn, data_dir=args.data_dir, log=sys.stderr)
    res["recipe"] = args.recipe
    if args.json:
        print(json.dumps(res))
    else:
        e = res["epochs"]
        print(f"{args.recipe} init={args.init} seed={args.seed}: {sum(r['seconds'] for r in e) / len(e):.2f} s/epoch, "
              f"test accuracy {100 * res['test_accuracy']:.2f}% (val {100 * e[-1]['val_accuracy']:.2f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
