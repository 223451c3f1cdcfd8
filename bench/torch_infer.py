"""PyTorch inference latency of the architectures qatc builds, fp32 (TorchScript, frozen) or int8 (FX
post-training static quantization, oneDNN engine), one configuration per process.

From the repo root, with Debian's interpreter:
    /usr/bin/python3 bench/torch_infer.py --model mobilenet_v1_224 --batch 1 --threads 1 --mode int8
prints one JSON line. bench/compare_infer.py runs it next to `qatc bench`; see bench/README.md,
"Inference: qatc vs PyTorch".

One configuration per process because PyTorch's oneDNN int8 path is known to misbehave when the batch
size or the thread count changes within one process (primitive caches keyed on the first shapes).
"""

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no bench/__pycache__ in the source tree
sys.path.insert(0, HERE)

# name -> (architecture, input [C, H, W], input range as qatc's bench draws it, builder kwargs)
# The ranges are those of lib/pipeline/bench.cpp: [0, 1] for MNIST, 'tf' preprocessing [-1, 1] for the
# MobileNets, 'caffe' [-123.68, 151.061] for ResNet50.
MODELS = {
    "tfmot_cnn": ("tfmot_cnn", (1, 28, 28), (0.0, 1.0), {}),
    "cnn_bn": ("cnn_bn", (1, 28, 28), (0.0, 1.0), {}),
    "mobilenet_v1_025_128": ("mobilenet_v1", (3, 128, 128), (-1.0, 1.0), {"alpha": 0.25}),
    "mobilenet_v1_224": ("mobilenet_v1", (3, 224, 224), (-1.0, 1.0), {"alpha": 1.0}),
    "mobilenet_v2_224": ("mobilenet_v2", (3, 224, 224), (-1.0, 1.0), {"alpha": 1.0}),
    "resnet50_224": ("resnet50_v1", (3, 224, 224), (-123.68, 151.061), {}),
}


# ---------------------------------------------------------------------------------------------------------------
# The architectures, as lib/models/*.cpp builds them (keras.applications), in NCHW.
#
# Keras' stride-2 layers pad asymmetrically (ZeroPadding2D((0, 1), (0, 1)) + 'valid', or 'same' on an even
# input: zero rows/columns at the bottom/right only). Here they use padding=1, which gives the same output
# sizes and the same multiply-add count (the window positions are shifted by one pixel, which changes the
# values but not the work), and is how PyTorch models are written (no separate pad op to time).

def build(arch, **kw):
    import torch
    import torch.nn as nn

    class Flatten(nn.Module):
        # torch.flatten rather than nn.Flatten: PyTorch 1.13's FX quantization keeps the function on quantized
        # tensors but leaves the module out (dequantize, flatten, quantize again), which would handicap int8.
        def forward(self, x):
            return torch.flatten(x, 1)

    if arch in ("tfmot_cnn", "cnn_bn"):
        import torch_models  # the training twins of bench/train_speed.py: the same layers as the recipes
        model = torch_models.build_model(arch, init="torch")
        return nn.Sequential(*[Flatten() if isinstance(m, nn.Flatten) else m for m in model])

    def conv_bn(cin, cout, k, stride, groups=1, act="relu6", eps=1e-3, bias=False):
        layers = [nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=bias),
                  nn.BatchNorm2d(cout, eps=eps)]
        if act == "relu6":
            layers.append(nn.ReLU6())
        elif act == "relu":
            layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    if arch == "mobilenet_v1":
        # conv1 3x3/2 + BN + ReLU6; 13 x (depthwise 3x3 + BN + ReLU6, pointwise 1x1 + BN + ReLU6);
        # global average pool, dropout (1e-3, a no-op in inference), classifier.
        a, classes = kw.get("alpha", 1.0), kw.get("classes", 1000)
        f = lambda n: int(n * a)  # noqa: E731  (Keras: int(filters * alpha))
        filters = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
        strides = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
        layers, cin = [conv_bn(3, f(32), 3, 2)], f(32)
        for n, s in zip(filters, strides):
            layers += [conv_bn(cin, cin, 3, s, groups=cin), conv_bn(cin, f(n), 1, 1)]
            cin = f(n)
        return nn.Sequential(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), Flatten(), nn.Dropout(1e-3),
                             nn.Linear(cin, classes))

    if arch == "mobilenet_v2":
        def make_divisible(v, d=8):  # Keras' _make_divisible
            nv = max(d, int(v + d / 2) // d * d)
            return nv + d if nv < 0.9 * v else nv

        class InvertedResidual(nn.Module):
            def __init__(self, cin, cout, stride, expansion):
                super().__init__()
                layers = [] if expansion == 1 else [conv_bn(cin, cin * expansion, 1, 1)]
                hidden = cin * expansion
                layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, 1, act=None)]
                self.conv = nn.Sequential(*layers)
                self.residual = stride == 1 and cin == cout

            def forward(self, x):
                return x + self.conv(x) if self.residual else self.conv(x)

        a, classes = kw.get("alpha", 1.0), kw.get("classes", 1000)
        blocks = [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6),
                  (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6), (160, 1, 6), (160, 1, 6),
                  (320, 1, 6)]
        cin = make_divisible(32 * a)
        layers = [conv_bn(3, cin, 3, 2)]
        for n, s, e in blocks:
            cout = make_divisible(int(n * a))
            layers.append(InvertedResidual(cin, cout, s, e))
            cin = cout
        last = make_divisible(1280 * a) if a > 1.0 else 1280
        layers.append(conv_bn(cin, last, 1, 1))
        return nn.Sequential(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), Flatten(), nn.Linear(last, classes))

    if arch == "resnet50_v1":
        eps = 1.001e-5  # Keras ResNets

        class Bottleneck(nn.Module):
            # Keras block1: 1x1 (stride) + BN + ReLU, 3x3 + BN + ReLU, 1x1 (4x) + BN, plus the shortcut
            # (1x1 conv (stride) + BN in the first block of a stage), ReLU. Every conv has a bias.
            def __init__(self, cin, filters, stride, conv_shortcut):
                super().__init__()
                self.shortcut = (conv_bn(cin, 4 * filters, 1, stride, act=None, eps=eps, bias=True)
                                 if conv_shortcut else nn.Identity())
                self.body = nn.Sequential(conv_bn(cin, filters, 1, stride, act="relu", eps=eps, bias=True),
                                          conv_bn(filters, filters, 3, 1, act="relu", eps=eps, bias=True),
                                          conv_bn(filters, 4 * filters, 1, 1, act=None, eps=eps, bias=True))
                self.relu = nn.ReLU()

            def forward(self, x):
                return self.relu(self.shortcut(x) + self.body(x))

        classes = kw.get("classes", 1000)
        # Stem: pad 3 + conv 7x7/2 (bias) + BN + ReLU, pad 1 + max pool 3x3/2 (padding after a ReLU: zeros and
        # PyTorch's -inf padding give the same maxima).
        layers = [nn.Conv2d(3, 64, 7, 2, padding=3, bias=True), nn.BatchNorm2d(64, eps=eps), nn.ReLU(),
                  nn.MaxPool2d(3, 2, padding=1)]
        cin = 64
        for s, (filters, n) in enumerate(zip([64, 128, 256, 512], [3, 4, 6, 3])):
            for b in range(n):
                layers.append(Bottleneck(cin, filters, 2 if (b == 0 and s > 0) else 1, b == 0))
                cin = 4 * filters
        return nn.Sequential(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), Flatten(), nn.Linear(cin, classes))

    raise ValueError(f"unknown architecture {arch!r}")


def randomize_bn(model, seed):
    """Gives every BatchNorm non-trivial statistics and affine parameters (a fresh one is the identity up to
    eps, which would make folding trivial), so both forms compute something model-like."""
    import torch
    import torch.nn as nn
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))


# ---------------------------------------------------------------------------------------------------------------

def random_input(shape, rng_range, batch, seed):
    import torch
    g = torch.Generator().manual_seed(seed)
    lo, hi = rng_range
    return torch.rand((batch,) + tuple(shape), generator=g) * (hi - lo) + lo


def prepare_fp32(model, x):
    """Eval model, BatchNorm folded into the convs (torch.fx), TorchScript trace, freeze, optimize_for_inference
    (oneDNN convolutions with blocked layouts where it applies)."""
    import torch
    from torch.fx.experimental.optimization import fuse
    model = fuse(model.eval())  # conv + BN -> conv
    with torch.no_grad():
        traced = torch.jit.trace(model, x)
        frozen = torch.jit.freeze(traced.eval())
        return torch.jit.optimize_for_inference(frozen)


def prepare_int8(model, x, input_shape, rng_range, calib_batches, calib_batch, qconfig):
    """FX graph mode post-training static quantization for the oneDNN engine: the default qconfig mapping
    (per-channel symmetric int8 weights; HistogramObserver activations without reduce_range, or MinMaxObserver
    with --observer minmax), calibrated on random batches in the input range, converted, then traced and frozen.
    The quantize of the float input and the dequantize of the logits are in the graph, as convert_fx puts them."""
    import torch
    from torch.ao.quantization import QConfig, QConfigMapping, get_default_qconfig_mapping
    from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if qconfig == "minmax":
        mapping = QConfigMapping().set_global(QConfig(
            activation=MinMaxObserver.with_args(reduce_range=False),
            weight=PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)))
    else:
        mapping = get_default_qconfig_mapping("onednn")
    model = model.eval()
    prepared = prepare_fx(model, mapping, example_inputs=(x[:1],))
    with torch.no_grad():
        for b in range(calib_batches):
            prepared(random_input(input_shape, rng_range, calib_batch, 1000 + b))
    converted = convert_fx(prepared)
    with torch.no_grad():
        traced = torch.jit.trace(converted, x)
        frozen = torch.jit.freeze(traced.eval())
    return frozen, converted


def op_summary(converted):
    """Counts of the module types and functions in the converted graph: shows what got quantized and what
    stayed float."""
    counts = {}
    modules = dict(converted.named_modules())
    for node in converted.graph.nodes:
        if node.op == "call_module":
            t = type(modules[node.target])
            key = t.__module__.replace("torch.ao.nn.", "").replace("torch.nn.", "") + "." + t.__name__
        elif node.op in ("call_function", "call_method"):
            key = getattr(node.target, "__name__", str(node.target))
        else:
            continue
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


@contextlib.contextmanager
def capture_fd(fd):
    """Redirects a C-level file descriptor (oneDNN's verbose output goes to stdout via printf) to a temp file;
    yields a list that receives the captured text."""
    out = []
    sys.stdout.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield out
        finally:
            try:
                import ctypes
                ctypes.CDLL(None).fflush(None)
            except OSError:
                pass
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


def onednn_kernels(module, x):
    """One run with oneDNN's verbose mode on: the ISA oneDNN dispatches to and the implementations of the
    convolution / inner product primitives, e.g. {'isa': 'Intel AVX-512 with Intel DL Boost',
    'impls': {'brg:avx512_core_vnni': 20}}. Empty when oneDNN is not used or verbose is unavailable."""
    import torch
    try:
        with capture_fd(1) as text:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON), torch.no_grad():
                module(x)
    except Exception as e:  # noqa: BLE001  (diagnostics only)
        return {"error": str(e)}
    isa, impls = None, {}
    for line in "".join(text).splitlines():
        parts = line.split(",")
        if len(parts) > 3 and parts[0] in ("onednn_verbose", "dnnl_verbose"):
            if parts[1] == "info" and "isa:" in line:
                isa = line.split("isa:", 1)[1].strip()
            elif parts[1] == "exec" and len(parts) > 5:
                # exec,cpu,<primitive>,<impl>,<prop>,...
                key = f"{parts[3]}:{parts[4]}"
                impls[key] = impls.get(key, 0) + 1
    return {"isa": isa, "impls": impls}


def aten_cpu_capability():
    """The instruction set of ATen's own vectorized kernels (quantize/dequantize, quantized ReLU6/add/pooling):
    'AVX2' unless ATEN_CPU_CAPABILITY=avx512 is set, even on AVX-512 CPUs (oneDNN picks its ISA separately)."""
    import torch
    for line in torch.__config__.show().splitlines():
        if "CPU capability usage:" in line:
            return line.split(":", 1)[1].strip()
    return None


def openblas_core():
    """The OpenBLAS kernels torch's BLAS calls (fp32 nn.Linear after freezing) go to, or None."""
    import torch_models  # one definition, shared with the training benchmark
    return torch_models.openblas_core()


def time_runs(module, x, *, warmup_runs, warmup_seconds, min_runs, min_seconds, max_runs, max_seconds):
    """Warm-up (at least warmup_runs and warmup_seconds; TorchScript's profiling executor specializes the graph
    in the first runs), then timed runs until both min_runs and min_seconds are reached, or max_runs, or
    max_seconds (with at least 5 runs). Returns the per-run wall times in ms."""
    import torch
    with torch.no_grad():
        t_start, n = time.perf_counter(), 0
        while n < warmup_runs or (time.perf_counter() - t_start < warmup_seconds and n < 50):
            module(x)
            n += 1
        ms, total = [], 0.0
        while True:
            t0 = time.perf_counter()
            module(x)
            ms.append((time.perf_counter() - t0) * 1e3)
            total += ms[-1] / 1e3
            if len(ms) >= max_runs:
                break
            if len(ms) >= min_runs and total >= min_seconds:
                break
            if len(ms) >= 5 and total >= max_seconds:
                break
    return ms, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, choices=list(MODELS))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (inter-op threads are 1)")
    ap.add_argument("--mode", choices=["fp32", "int8"], default="fp32")
    ap.add_argument("--observer", choices=["default", "minmax"], default="default",
                    help="int8 activation observer: default = get_default_qconfig_mapping('onednn') "
                         "(HistogramObserver); minmax is faster to calibrate. Timing is unaffected")
    ap.add_argument("--calib-batches", type=int, default=2, help="int8 calibration batches (default 2, as qatc bench)")
    ap.add_argument("--calib-batch", type=int, default=8,
                    help="images per calibration batch (default 8, as qatc bench)")
    ap.add_argument("--warmup-runs", type=int, default=3)
    ap.add_argument("--warmup-seconds", type=float, default=0.5)
    ap.add_argument("--min-runs", type=int, default=20)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--max-runs", type=int, default=2000)
    ap.add_argument("--max-seconds", type=float, default=30.0, help="cap on the timed seconds (at least 5 runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-kernel-probe", action="store_true",
                    help="skip the final oneDNN-verbose run that reports the ISA and primitive implementations")
    args = ap.parse_args()
    if args.batch < 1 or args.threads < 1:
        ap.error("--batch and --threads must be >= 1")

    t_begin = time.perf_counter()
    load_start = [round(v, 2) for v in os.getloadavg()]
    import torch
    torch.set_num_interop_threads(1)  # before any inter-op work
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.mode == "int8":
        if "onednn" not in torch.backends.quantized.supported_engines:
            print(f"torch_infer: this PyTorch has no onednn quantized engine "
                  f"({torch.backends.quantized.supported_engines})", file=sys.stderr)
            return 2
        torch.backends.quantized.engine = "onednn"

    arch, shape, rng_range, kw = MODELS[args.model]
    model = build(arch, **kw).eval()
    randomize_bn(model, args.seed)
    # Counted as Keras (and `qatc inspect`) count: weights, biases, BatchNorm gamma/beta and moving mean/variance.
    params_keras = (sum(p.numel() for p in model.parameters()) +
                    sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var"))))
    x = random_input(shape, rng_range, args.batch, 0xB0B)
    ops = None
    if args.mode == "fp32":
        module = prepare_fp32(model, x)
    else:
        module, converted = prepare_int8(model, x, shape, rng_range, args.calib_batches, args.calib_batch,
                                         args.observer)
        ops = op_summary(converted)
    t_prepared = time.perf_counter()

    load_before = [round(v, 2) for v in os.getloadavg()]
    ms, warmups = time_runs(module, x, warmup_runs=args.warmup_runs, warmup_seconds=args.warmup_seconds,
                            min_runs=args.min_runs, min_seconds=args.min_seconds, max_runs=args.max_runs,
                            max_seconds=args.max_seconds)
    load_after = [round(v, 2) for v in os.getloadavg()]
    s = sorted(ms)
    median, p90 = s[len(s) // 2], s[min(len(s) - 1, len(s) * 9 // 10)]  # the same order statistics as qatc bench
    res = {
        "model": args.model, "mode": args.mode, "batch": args.batch, "threads": args.threads,
        "latency_ms_median": median, "latency_ms_p90": p90, "latency_ms_min": s[0],
        "images_per_s": args.batch * 1000.0 / median, "runs": len(ms), "warmup_runs": warmups,
        "timed_seconds": sum(ms) / 1e3, "prepare_seconds": t_prepared - t_begin,
        "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "quantized_engine": torch.backends.quantized.engine if args.mode == "int8" else None,
        "observer": args.observer if args.mode == "int8" else None,
        "mkldnn_available": bool(torch.backends.mkldnn.is_available()),
        "aten_cpu_capability": aten_cpu_capability(),
        "openblas_core": openblas_core(), "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
        "params_keras": params_keras,
        "load_start": load_start, "load_before": load_before, "load_after": load_after,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    if ops is not None:
        res["converted_ops"] = ops
    if not args.no_kernel_probe:
        res["onednn"] = onednn_kernels(module, x)
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
