"""Inference latency of qatc (float and int8) against PyTorch (fp32 TorchScript and int8 on oneDNN) on the same
architectures, side by side, each measurement in a fresh process.

From the repo root, with Debian's interpreter:
    /usr/bin/python3 bench/compare_infer.py --quick
    /usr/bin/python3 bench/compare_infer.py --models mobilenet_v1_224,resnet50_224 --batches 1 --threads 1 \\
        --json /tmp/infer.json
See bench/README.md, "Inference: qatc vs PyTorch", for what is measured and the quirks.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.dont_write_bytecode = True

# model -> (qatc recipe, --set overrides). The names are bench/torch_infer.py's.
MODELS = {
    "tfmot_cnn": ("recipes/mnist/tfmot_cnn.yaml", []),
    "cnn_bn": ("recipes/mnist/cnn_bn.yaml", []),
    "mobilenet_v1_025_128": ("recipes/imagenet/mobilenet_v1_224.yaml",
                             ["model.alpha=0.25", "model.input=[128, 128, 3]"]),
    "mobilenet_v1_224": ("recipes/imagenet/mobilenet_v1_224.yaml", []),
    "mobilenet_v2_224": ("recipes/imagenet/mobilenet_v2_224.yaml", []),
    "resnet50_224": ("recipes/imagenet/resnet50_v1.yaml", []),
}
QUICK_MODELS = ["tfmot_cnn", "mobilenet_v1_025_128"]
FORMS = [("qatc", "float"), ("qatc", "int8"), ("torch", "fp32"), ("torch", "int8")]
# --torch-no-amx: PyTorch int8 once more with oneDNN capped below AMX (its int8 convolutions then use AVX-512 VNNI;
# compare with qatc --kernels avx512_vnni, e.g. on a CPU without AMX).
NO_AMX_FORM = ("torch", "int8_noamx")
NO_AMX_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}


class BenchError(Exception):
    pass


def csv_list(kind):
    def parse(text):
        items = [x.strip() for x in text.split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError("empty list")
        return [kind(x) for x in items]
    return parse


# ---------------------------------------------------------------------------------------------------------------
# Machine state.

def cpu_info():
    fields, flags = {}, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model") and key not in fields:
                    fields[key] = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    model = fields.get("model name", "unknown")
    if "cpu family" in fields and "model" in fields:  # a KVM guest's name is often just "Intel Xeon Processor"
        model += f" (family {fields['cpu family']} model {fields['model']})"
    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
    return model, [x for x in wanted if x in flags]


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def wait_for_idle(threshold, timeout):
    """Waits up to `timeout` s for the 1-minute load average to drop below `threshold`."""
    t0 = time.monotonic()
    while os.getloadavg()[0] >= threshold and time.monotonic() - t0 < timeout:
        time.sleep(2)
    return {"load": loadavg(), "idle": os.getloadavg()[0] < threshold, "waited_s": round(time.monotonic() - t0, 1)}


# ---------------------------------------------------------------------------------------------------------------
# The two sides.

def run(cmd, env, timeout, what, cpu=None):
    """Runs cmd (on CPU `cpu` only, if given); returns (stdout, stderr). qatc may be briefly missing while its
    owner rebuilds it: retry then."""
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    for attempt in range(30):
        if not os.path.exists(cmd[0]):
            time.sleep(10)
            continue
        try:
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=timeout, preexec_fn=pin)
        except OSError as e:  # e.g. "Text file busy" while the binary is being written
            if attempt < 29:
                time.sleep(10)
                continue
            raise BenchError(f"{what}: {e}")
        except subprocess.TimeoutExpired:
            raise BenchError(f"{what}: timed out after {timeout} s: {' '.join(cmd)}")
        if p.returncode != 0:
            tail = "\n".join(p.stderr.strip().splitlines()[-12:])
            raise BenchError(f"{what} failed (exit {p.returncode}): {' '.join(cmd)}\n{tail}")
        return p.stdout, p.stderr
    raise BenchError(f"{what}: {cmd[0]} missing for 5 minutes")


def qatc_env(args, form):
    env = dict(os.environ)
    if form == "float" and args.unset_openblas_coretype:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("QATC_BLAS_REEXEC", None)  # let qatc pick (and re-exec with) the kernels for this CPU
    return env


def torch_env(args, threads):
    env = dict(os.environ)
    # libgomp (torch's intra-op pool) and OpenBLAS (fp32 nn.Linear) default to every core: pin both.
    env["OMP_NUM_THREADS"] = str(threads)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    if args.torch_coretype:
        env["OPENBLAS_CORETYPE"] = args.torch_coretype
    env.update(args.torch_env_dict)
    return env


def qatc_cmd(args, model, batch, threads, form):
    recipe, sets = MODELS[model]
    cmd = [args.qatc, "--threads", str(threads), "--json", "bench", os.path.join(ROOT, recipe),
           "--batch", str(batch), "--form", form, "--seconds", str(args.seconds), "--runs", str(args.max_runs)]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def torch_cmd(args, model, batch, threads, mode):
    mode = "int8" if mode == "int8_noamx" else mode
    return [args.python, os.path.join(HERE, "torch_infer.py"), "--model", model, "--batch", str(batch),
            "--threads", str(threads), "--mode", mode, "--min-seconds", str(args.seconds),
            "--min-runs", str(args.min_runs), "--max-runs", str(args.max_runs),
            "--max-seconds", str(args.max_seconds), "--observer", args.observer]


def measure(args, side, form, model, batch, threads):
    if side == "qatc":
        cmd, env = qatc_cmd(args, model, batch, threads, form), qatc_env(args, form)
    else:
        cmd, env = torch_cmd(args, model, batch, threads, form), torch_env(args, threads)
        if form == "int8_noamx":
            env.update(NO_AMX_ENV)
    rec = {"side": side, "form": form, "command": " ".join(cmd), "load_start": loadavg()}
    t0 = time.perf_counter()
    try:
        cpu = args.pin_cpu if threads == 1 else None
        out, err = run(cmd, env, args.timeout, f"{side} {form} {model} b{batch} t{threads}", cpu)
        if cpu is not None:
            rec["cpu"] = cpu
        if side == "qatc":
            r = json.loads(out)["results"][0]
        else:
            r = json.loads(out.strip().splitlines()[-1])
        rec.update(r)
    except (BenchError, ValueError, KeyError, IndexError) as e:
        rec["error"] = str(e)
    rec["wall_seconds"] = round(time.perf_counter() - t0, 2)
    rec["load_end"] = loadavg()
    return rec


def summarize(runs):
    """The median over repeats of each run's median (and p90)."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[-1].get("error", "failed"), "repeats": runs}
    return {"latency_ms_median": statistics.median(r["latency_ms_median"] for r in ok),
            "latency_ms_p90": statistics.median(r["latency_ms_p90"] for r in ok),
            "images_per_s": statistics.median(r["images_per_s"] for r in ok),
            "timed_runs": [r["runs"] for r in ok], "kernels": ok[0].get("kernels"),
            "repeats": runs}


# ---------------------------------------------------------------------------------------------------------------
# Checks and environment probes.

def qatc_params(args, model):
    """`qatc inspect`'s parameter count of the recipe (with the --set overrides, which inspect does not take:
    applied to a temporary copy)."""
    import yaml  # Debian's python3-yaml
    recipe, sets = MODELS[model]
    path = os.path.join(ROOT, recipe)
    tmp = None
    if sets:
        with open(path) as f:
            r = yaml.safe_load(f)
        for s in sets:
            key, _, value = s.partition("=")
            node = r
            *parents, leaf = key.split(".")
            for k in parents:
                node = node.setdefault(k, {})
            node[leaf] = yaml.safe_load(value)
        fd, tmp = tempfile.mkstemp(suffix=".yaml", prefix="compare_infer_")
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(r, f)
        path = tmp
    try:
        out, _ = run([args.qatc, "--json", "inspect", path], dict(os.environ), 120, f"qatc inspect {model}")
        return json.loads(out)["params"]
    finally:
        if tmp:
            os.unlink(tmp)


def torch_params(args, model):
    code = ("import sys; sys.dont_write_bytecode = True; sys.path.insert(0, sys.argv[1]); import torch_infer as t; "
            "a, s, r, kw = t.MODELS[sys.argv[2]]; m = t.build(a, **kw); "
            "print(sum(p.numel() for p in m.parameters()) + sum(b.numel() for n, b in m.named_buffers() "
            "if n.endswith(('running_mean', 'running_var'))))")
    out, _ = run([args.python, "-c", code, HERE, model], torch_env(args, 1), 300, f"torch params {model}")
    return int(out.strip().splitlines()[-1])


def openblas_core_of_qatc(args, env):
    """The OpenBLAS kernels qatc runs with (logged at debug level before any command)."""
    p = subprocess.run([args.qatc, "-v", "eval", "/nonexistent/compare_infer_probe.ckpt"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stderr.splitlines():
        if "OpenBLAS kernels:" in line:
            return line.split("OpenBLAS kernels:", 1)[1].strip()
    return None


def torch_probe(args):
    code = ("import json, sys; sys.dont_write_bytecode = True; sys.path.insert(0, sys.argv[1]); "
            "import torch, torch_infer as t; "
            "print(json.dumps({'torch': torch.__version__, 'engines': torch.backends.quantized.supported_engines, "
            "'aten_cpu_capability': t.aten_cpu_capability(), 'openblas_core': t.openblas_core()}))")
    out, _ = run([args.python, "-c", code, HERE], torch_env(args, 1), 120,
                 f"import torch with {args.python} (use /usr/bin/python3 with Debian's python3-torch)")
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------------
# Output.

def fmt_ms(s):
    """The median; with several repeats also the range of their medians, in brackets."""
    if "error" in s:
        return "fail"
    f = lambda v: f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.1f}"  # noqa: E731
    meds = [r["latency_ms_median"] for r in s["repeats"] if "error" not in r]
    text = f(s["latency_ms_median"])
    return text + f" ({f(min(meds))}-{f(max(meds))})" if len(meds) > 1 else text


def ratio(a, b):
    if "error" in a or "error" in b:
        return "-"
    return f"{a['latency_ms_median'] / b['latency_ms_median']:.2f}"


def load_range(row):
    loads = [x for side in row["results"].values() for r in side["repeats"]
             for x in (r["load_start"][0], r["load_end"][0])]
    return f"{min(loads):.2f}-{max(loads):.2f}"


def table(rows, no_amx):
    head = ["model", "batch", "threads", "qatc float ms", "qatc int8 ms", "torch fp32 ms", "torch int8 (onednn) ms",
            "torch int8 / qatc int8", "qatc float / qatc int8"]
    if no_amx:
        head += ["torch int8 AMX off ms", "torch int8 AMX off / qatc int8"]
    head.append("load 1-min")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for row in rows:
        r = row["results"]
        cells = [row["model"], str(row["batch"]), str(row["threads"]), fmt_ms(r["qatc float"]), fmt_ms(r["qatc int8"]),
                 fmt_ms(r["torch fp32"]), fmt_ms(r["torch int8"]), ratio(r["torch int8"], r["qatc int8"]),
                 ratio(r["qatc float"], r["qatc int8"])]
        if no_amx:
            cells += [fmt_ms(r["torch int8_noamx"]), ratio(r["torch int8_noamx"], r["qatc int8"])]
        cells.append(load_range(row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_report(doc):
    """The table and the notes under it, from the --json document."""
    a, rows, cpu = doc["args"], doc["rows"], doc["cpu"]
    kernels = sorted({r["results"]["qatc int8"].get("kernels") for r in rows} - {None})
    float_convs = sorted({r["results"]["qatc float"].get("kernels") for r in rows} - {None})

    def onednn_summary(key):
        reps = [rep for r in rows for rep in r["results"].get(key, {}).get("repeats", [])]
        impls = sorted({k for rep in reps for k in rep.get("onednn", {}).get("impls", {})
                        if k.startswith(("convolution", "matmul", "inner_product"))})
        isa = next((rep["onednn"]["isa"] for rep in reps if rep.get("onednn", {}).get("isa")), None)
        return isa, impls

    if a["unset_openblas_coretype"]:
        print("qatc float runs with OPENBLAS_CORETYPE removed from their environment (--unset-openblas-coretype)")
    print(f"Median latency per run of a batch (ms), {cpu}; ratios > 1 mean qatc int8 is faster."
          + (f" With {a['repeats']} repeats" + (f" ({a['int8_repeats']} of the int8 forms)"
                                                 if a.get("int8_repeats", a["repeats"]) != a["repeats"] else "")
             + ": median of their medians (range)." if a.get("int8_repeats", a["repeats"]) > 1 else ""))
    print()
    print(table(rows, a["torch_no_amx"]))
    print()
    print(f"qatc int8 kernels: {', '.join(kernels) or '-'}; qatc float convolutions: {', '.join(float_convs) or '-'}, "
          f"OpenBLAS {doc['qatc_float_openblas']} for the rest")
    for key in ["torch int8"] + (["torch int8_noamx"] if a["torch_no_amx"] else []):
        isa, impls = onednn_summary(key)
        if isa or impls:
            print(f"{key}: oneDNN ISA {isa}; conv/matmul implementations {', '.join(impls)}")
    not_idle = [r for r in rows if not r["idle_wait"]["idle"]]
    if not_idle:
        print(f"note: {len(not_idle)} of {len(rows)} configurations started with a 1-min load >= {a['idle_load']:g} "
              "(the machine is shared; part of it is this script's own previous run); compare the load column")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qatc", default=os.path.join(ROOT, "build", "qatc"),
                    help="the qatc binary (default: %(default)s)")
    ap.add_argument("--python", default=sys.executable, help="interpreter with torch for torch_infer.py")
    ap.add_argument("--models", type=csv_list(str), help=f"comma-separated subset of {','.join(MODELS)} "
                    "(default: all; with --quick: " + ",".join(QUICK_MODELS) + ")")
    ap.add_argument("--batches", type=csv_list(int), help="comma-separated batch sizes (default 1,32)")
    ap.add_argument("--threads", type=csv_list(int), help="comma-separated thread counts (default 1,2; --quick: 1)")
    ap.add_argument("--quick", action="store_true",
                    help="development run: the two small models unless --models, 1 thread unless --threads, "
                    "1 s of timing per measurement, at most 30 s of waiting for an idle machine")
    ap.add_argument("--repeats", type=int, default=1, help="measurements of each form per configuration, "
                    "alternating the order; the median of the medians is reported (default 1)")
    ap.add_argument("--int8-repeats", type=int, help="measurements of the two int8 forms (qatc int8, torch "
                    "int8) per configuration, at least --repeats: the ones beyond --repeats time only them, "
                    "still alternating, so the int8 comparison gets more samples of a noisy machine for little "
                    "time (the float forms of large models take the longest); default --repeats")
    ap.add_argument("--seconds", type=float, help="timed seconds per measurement: qatc bench --seconds and "
                    "torch_infer.py --min-seconds (default 3; --quick 1)")
    ap.add_argument("--min-runs", type=int, help="torch_infer.py --min-runs (default 20; --quick 10)")
    ap.add_argument("--max-runs", type=int, default=2000,
                    help="cap on the timed runs of either side (qatc bench --runs)")
    ap.add_argument("--max-seconds", type=float, default=20.0,
                    help="torch_infer.py --max-seconds: stop after this many timed seconds once 5 runs are done")
    ap.add_argument("--observer", choices=["default", "minmax"], default="default",
                    help="torch int8 activation observer (see torch_infer.py); does not change the timing")
    ap.add_argument("--idle-load", type=float, default=1.0,
                    help="before each configuration wait for the 1-minute load average to drop below this "
                    "(default 1.0)")
    ap.add_argument("--idle-timeout", type=float, help="... for at most this many seconds (default 120; --quick 30; "
                    "0 = do not wait)")
    ap.add_argument("--unset-openblas-coretype", action="store_true",
                    help="remove OPENBLAS_CORETYPE from the environment of the qatc float runs only (qatc then picks "
                    "the OpenBLAS kernels for this CPU itself)")
    ap.add_argument("--torch-openblas-coretype", default="auto", metavar="auto|keep|NAME",
                    help="OPENBLAS_CORETYPE for torch_infer.py (fp32 nn.Linear goes to OpenBLAS). auto (default): when "
                    "OPENBLAS_CORETYPE is not set, use the kernels qatc's float runs use; keep: leave OpenBLAS's "
                    "choice")
    ap.add_argument("--torch-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for torch_infer.py, e.g. ATEN_CPU_CAPABILITY=avx512 (repeatable)")
    ap.add_argument("--torch-no-amx", action="store_true",
                    help="also time PyTorch int8 with ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI (no AMX) and show it in two "
                    "more columns")
    ap.add_argument("--skip-param-check", action="store_true",
                    help="do not compare `qatc inspect`'s parameter count with the PyTorch twin's")
    ap.add_argument("--pin-cpu", type=int, metavar="N",
                    help="run every 1-thread measurement, both sides, on CPU N only: on a VM whose vCPUs see different "
                         "contention from the host, a 1-thread process's time otherwise depends on where it lands")
    ap.add_argument("--timeout", type=float, default=900, help="seconds before one measurement is abandoned")
    ap.add_argument("--json", metavar="FILE", help="write every raw result to FILE")
    ap.add_argument("--print", metavar="FILE", help="print the header and table of an earlier --json FILE and exit")
    args = ap.parse_args()
    if args.pin_cpu is not None and args.pin_cpu not in os.sched_getaffinity(0):
        ap.error(f"--pin-cpu {args.pin_cpu}: not one of this process's CPUs {sorted(os.sched_getaffinity(0))}")
    if args.print:
        with open(args.print) as f:
            doc = json.load(f)
        print("\n".join(doc["header"]))
        print()
        print_report(doc)
        return 0

    models = args.models or (QUICK_MODELS if args.quick else list(MODELS))
    for m in models:
        if m not in MODELS:
            ap.error(f"--models: unknown model {m!r} (known: {', '.join(MODELS)})")
    batches = args.batches or [1, 32]
    threads = args.threads or ([1] if args.quick else [1, 2])
    if args.seconds is None:
        args.seconds = 1.0 if args.quick else 3.0
    if args.min_runs is None:
        args.min_runs = 10 if args.quick else 20
    if args.idle_timeout is None:
        args.idle_timeout = 30.0 if args.quick else 120.0
    if min(batches) < 1 or min(threads) < 1 or args.repeats < 1:
        ap.error("batches, threads and --repeats must be >= 1")
    if args.int8_repeats is None:
        args.int8_repeats = args.repeats
    if args.int8_repeats < args.repeats:
        ap.error("--int8-repeats must be at least --repeats")
    args.torch_env_dict = {}
    for kv in args.torch_env:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            ap.error(f"--torch-env {kv!r}: expected KEY=VALUE")
        args.torch_env_dict[key] = value

    started = datetime.datetime.now().astimezone()
    cpu, flags = cpu_info()
    coretype_env = os.environ.get("OPENBLAS_CORETYPE")
    args.torch_coretype = None
    try:
        qatc_version = run([args.qatc, "--version"], None, 60, "qatc --version")[0].strip()
        qatc_float_blas = openblas_core_of_qatc(args, qatc_env(args, "float"))
        if args.torch_openblas_coretype == "auto":
            if coretype_env is None:
                args.torch_coretype = qatc_float_blas
        elif args.torch_openblas_coretype != "keep":
            args.torch_coretype = args.torch_openblas_coretype
        tinfo = torch_probe(args)
        if "onednn" not in tinfo["engines"]:
            raise BenchError(f"this PyTorch has no onednn quantized engine ({tinfo['engines']})")
        params = {}
        if not args.skip_param_check:
            for m in models:
                q, t = qatc_params(args, m), torch_params(args, m)
                params[m] = {"qatc": q, "torch": t}
                if q != t:
                    raise BenchError(f"{m}: qatc's recipe has {q} parameters but the PyTorch twin {t}: not the same "
                                     "architecture; fix bench/torch_infer.py or MODELS here")
    except BenchError as e:
        print(f"compare_infer: {e}", file=sys.stderr)
        return 1

    header = [
        f"date: {started.strftime('%Y-%m-%d %H:%M %Z')}",
        f"CPU: {cpu} ({os.cpu_count()} CPUs, {len(os.sched_getaffinity(0))} usable; {' '.join(flags)})",
        f"qatc: {qatc_version}, {args.qatc}",
        f"PyTorch {tinfo['torch']}: ATen CPU capability {tinfo['aten_cpu_capability']}, quantized engine onednn, "
        f"OpenBLAS {tinfo['openblas_core']}" + (f" (OPENBLAS_CORETYPE={args.torch_coretype} for torch_infer.py)"
                                                if args.torch_coretype else ""),
        f"OPENBLAS_CORETYPE in this environment: {coretype_env or 'unset'}. It chooses the OpenBLAS kernels of qatc's "
        "float path (e.g. Haswell = AVX2, slower than SkylakeX on AVX-512 CPUs; when unset qatc picks them itself)"
        + ("; --unset-openblas-coretype: REMOVED for the qatc float runs" if args.unset_openblas_coretype else "")
        + f". qatc float runs use OpenBLAS {qatc_float_blas}.",
        f"timing: qatc bench --seconds {args.seconds:g} --runs {args.max_runs} (2 warm-up runs, then >= 5 runs and "
        f"{args.seconds:g} s); torch_infer.py >= {args.min_runs} runs and {args.seconds:g} s after warm-up, at most "
        f"{args.max_runs} runs or {args.max_seconds:g} s; repeats {args.repeats}"
        + (f" (int8 forms {args.int8_repeats})" if args.int8_repeats != args.repeats else "") + "; idle wait: 1-min load < "
        f"{args.idle_load:g} for up to {args.idle_timeout:g} s before each configuration"
        + (f"; 1-thread measurements of both sides pinned to CPU {args.pin_cpu}" if args.pin_cpu is not None else ""),
    ]
    if "amx_int8" in flags:
        header.append("This CPU has AMX: PyTorch's oneDNN uses it for int8 convolutions and matmuls (its ISA and "
                      "primitives are listed below the table), as do qatc's int8 kernels (path amx)"
                      + (". --torch-no-amx: torch int8 also timed with " +
                         " ".join(f"{k}={v}" for k, v in NO_AMX_ENV.items()) if args.torch_no_amx else
                         " (--torch-no-amx adds torch int8 capped at AVX-512 VNNI)"))
    if params:
        header.append("parameters (Keras count, qatc inspect = PyTorch twin): " +
                      ", ".join(f"{m} {p['qatc']}" for m, p in params.items()))
    print("\n".join(header), flush=True)

    rows = []
    configs = [(m, b, t) for m in models for b in batches for t in threads]
    for i, (m, b, t) in enumerate(configs):
        idle = wait_for_idle(args.idle_load, args.idle_timeout) if args.idle_timeout > 0 else \
            {"load": loadavg(), "idle": os.getloadavg()[0] < args.idle_load, "waited_s": 0}
        forms = FORMS + ([NO_AMX_FORM] if args.torch_no_amx else [])
        runs = {f"{s} {f}": [] for s, f in forms}
        for rep in range(args.int8_repeats):
            # Beyond --repeats only the int8 forms (each side's int8 and, with --torch-no-amx, its variant).
            rep_forms = forms if rep < args.repeats else [f for f in forms if f[1].startswith("int8")]
            order = rep_forms if rep % 2 == 0 else rep_forms[::-1]
            for side, form in order:
                rec = measure(args, side, form, m, b, t)
                runs[f"{side} {form}"].append(rec)
                msg = rec.get("error", "").splitlines()[0] if "error" in rec else \
                    f"{rec['latency_ms_median']:.3f} ms median ({rec['runs']} runs)"
                print(f"  [{i + 1}/{len(configs)}] {m} b{b} t{t} {side} {form}: {msg}; load "
                      f"{rec['load_start'][0]:.2f} -> {rec['load_end'][0]:.2f}", flush=True)
        rows.append({"model": m, "batch": b, "threads": t, "idle_wait": idle,
                     "results": {k: summarize(v) for k, v in runs.items()}})

    doc = {"header": header, "started": started.isoformat(), "cpu": cpu, "cpu_flags": flags,
           "qatc_version": qatc_version, "qatc_float_openblas": qatc_float_blas, "torch": tinfo,
           "openblas_coretype_env": coretype_env, "params": params,
           "args": {k: v for k, v in vars(args).items()}, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    print()
    print_report(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
