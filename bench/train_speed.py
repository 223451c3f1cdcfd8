"""Training speed of qatc against PyTorch (eager, CPU) on the same recipes, with test accuracy as a cross-check.

From the repo root:
    /usr/bin/python3 bench/train_speed.py --qatc build/qatc [RECIPE.yaml ...] [--threads 2] [--epochs 1]
        [--repeats 1] [--wait-idle] [--json results.json]
See bench/README.md for what is measured and the quirks.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no bench/__pycache__ in the source tree
sys.path.insert(0, HERE)
import torch_models  # noqa: E402  (numpy only at import time; torch is imported in the worker process)

DEFAULT_RECIPES = ["recipes/mnist/tfmot_cnn.yaml", "recipes/mnist/cnn_bn.yaml"]
IDLE_LOAD = 0.5
IDLE_WAIT_S = 60


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------------------------------------------
# Recipe -> torch twin: refuse to benchmark a recipe the twin does not reproduce.

def layer_signature(layer, where):
    """The normal form of torch_models.ARCH_LAYERS for one recipe layer."""
    t = layer.get("type")
    known = {"type", "name", "inputs"}
    if t == "conv2d":
        sig = (t, layer.get("filters"), layer.get("kernel"), layer.get("padding", "valid"),
               layer.get("use_bias", True), layer.get("activation", "none"))
        known |= {"filters", "kernel", "padding", "use_bias", "activation"}
    elif t == "dense":
        sig = (t, layer.get("units"), None, None, layer.get("use_bias", True), layer.get("activation", "none"))
        known |= {"units", "use_bias", "activation"}
    elif t == "maxpool":
        sig = (t, layer.get("pool", 2))
        known |= {"pool"}
    else:
        sig = (t,)
    extra = set(layer) - known
    if extra:
        raise BenchError(f"{where}: layer {layer.get('name', t)} sets {sorted(extra)}, which the PyTorch twin "
                         "does not model; extend bench/torch_models.py first")
    return sig


def spec_for_recipe(path):
    """Reads a qatc recipe and returns the torch_models.SPECS entry it corresponds to, after checking that the
    architecture and every training setting that changes the result agree."""
    import yaml  # Debian's python3-yaml

    with open(path) as f:
        r = yaml.safe_load(f)
    name = r.get("name")
    if name not in torch_models.SPECS:
        raise BenchError(f"{path}: recipe '{name}' has no PyTorch twin (known: {', '.join(torch_models.SPECS)})")
    spec = dict(torch_models.SPECS[name], recipe=name, file=path)
    model, data, train = r.get("model", {}), r.get("data", {}), r.get("train", {})
    opt, sched = train.get("optimizer", {}), train.get("schedule", {})
    layers = [layer_signature(l, path) for l in model.get("layers", [])]
    want = [tuple(x) for x in torch_models.ARCH_LAYERS[spec["arch"]]]
    checks = [
        ("model.input", model.get("input"), [28, 28, 1]),
        ("model.layers", layers, want),
        ("data.dataset", data.get("dataset"), spec["dataset"]),
        ("data.validation_split", data.get("validation_split", 0.0), spec["validation_split"]),
        ("data.train_subset", data.get("train_subset", 0), 0),
        ("data.mean/std", (data.get("mean", 0.0), data.get("std", 1.0)), (0.0, 1.0)),
        ("train.batch_size", train.get("batch_size", 32), spec["batch_size"]),
        ("train.shuffle", train.get("shuffle", True), True),
        ("train.optimizer.type", opt.get("type", "adam"), "adam"),
        ("train.optimizer.lr", opt.get("lr", 1e-3), spec["lr"]),
        ("train.optimizer.betas", (opt.get("beta1", 0.9), opt.get("beta2", 0.999)), (0.9, 0.999)),
        ("train.optimizer.epsilon", opt.get("epsilon", 1e-7), torch_models.ADAM_EPS),
        ("train.optimizer.weight_decay", opt.get("weight_decay", 0.0), 0.0),
        ("train.schedule.type", sched.get("type", "constant"), spec["schedule"]),
        ("train.schedule.warmup_steps/min_lr", (sched.get("warmup_steps", 0), sched.get("min_lr", 0.0)), (0, 0.0)),
    ]
    for key, got, expected in checks:
        if got != expected:
            raise BenchError(f"{path}: {key} is {got!r} but the PyTorch twin of '{name}' uses {expected!r}; "
                             "update bench/torch_models.py SPECS/ARCH_LAYERS")
    return spec


# ---------------------------------------------------------------------------------------------------------------
# Machine state.

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx2", "fma", "avx512f", "avx512_vnni", "amx_tile") if x in flags]
    except OSError:
        pass
    return []


def wait_for_idle(enabled):
    """Waits up to IDLE_WAIT_S for the 1-minute load average to drop below IDLE_LOAD; returns the load
    (1, 5, 15 min) right before the run and whether it was idle."""
    if enabled:
        deadline = time.monotonic() + IDLE_WAIT_S
        while os.getloadavg()[0] >= IDLE_LOAD and time.monotonic() < deadline:
            time.sleep(2)
    load = os.getloadavg()
    return {"load_before": [round(x, 2) for x in load], "idle": load[0] < IDLE_LOAD}


# ---------------------------------------------------------------------------------------------------------------
# One timed run of each side, each in its own process.

def run_checked(cmd, env=None, what=""):
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        tail = "\n".join(p.stderr.strip().splitlines()[-15:])
        raise BenchError(f"{what} failed (exit {p.returncode}): {' '.join(cmd)}\n{tail}")
    return p.stdout


def run_qatc(args, spec, workdir, rep):
    out = os.path.join(workdir, f"{spec['recipe']}_qatc_{rep}")
    train_cmd = [args.qatc, "train", spec["file"], "--out", out, "--threads", str(args.threads), "-q",
                 "--set", f"train.epochs={args.epochs}", "--set", f"seed={args.seed}"]
    state = wait_for_idle(args.wait_idle)
    t0 = time.perf_counter()
    run_checked(train_cmd, what="qatc train")
    wall = time.perf_counter() - t0
    with open(os.path.join(out, "metrics.jsonl")) as f:
        epochs = [e for e in map(json.loads, f) if e.get("stage") == "train"]
    if len(epochs) != args.epochs:
        raise BenchError(f"{out}/metrics.jsonl: {len(epochs)} train epochs, expected {args.epochs}")
    ev = json.loads(run_checked([args.qatc, "eval", os.path.join(out, "float.ckpt"), "--json",
                                 "--threads", str(args.threads), "-q"], what="qatc eval"))
    # A QAT epoch over the same training images at the training batch size, from the float model just
    # trained (the recipe's own QAT stage may use a subset and another batch size).
    qat_out = out + "_qat"
    qat_cmd = [args.qatc, "run", spec["file"], "--out", qat_out, "--from", os.path.join(out, "float.ckpt"),
               "--threads", str(args.threads), "-q", "--set", "stages=[qat]", "--set", "qat.subset=0",
               "--set", "qat.epochs=1", "--set", f"qat.batch_size={spec['batch_size']}", "--set", f"seed={args.seed}"]
    run_checked(qat_cmd, what="qatc qat")
    with open(os.path.join(qat_out, "metrics.jsonl")) as f:
        qat_epochs = [e for e in map(json.loads, f) if e.get("stage") == "qat"]
    if len(qat_epochs) != 1:
        raise BenchError(f"{qat_out}/metrics.jsonl: {len(qat_epochs)} qat epochs, expected 1")
    return dict(state, wall_seconds=wall, command=" ".join(train_cmd), qat_command=" ".join(qat_cmd),
                qat_seconds_per_epoch=qat_epochs[0]["seconds"],
                seconds_per_epoch=statistics.mean(e["seconds"] for e in epochs),
                epoch_seconds=[e["seconds"] for e in epochs], steps_per_epoch=epochs[0]["steps"],
                train_loss=epochs[-1]["loss"], val_accuracy=epochs[-1].get("val_accuracy"),
                test_accuracy=ev["accuracy"], test_examples=ev["examples"])


EXTRA_TORCH_ENV = {}  # --torch-env KEY=VALUE


def torch_env(threads, coretype=None):
    env = dict(os.environ)
    env.update(EXTRA_TORCH_ENV)
    # libgomp (torch's intra-op pool) and OpenBLAS (torch's BLAS on Debian: pthread build, its own pool)
    # both default to every core; pin both to the thread count under test.
    env["OMP_NUM_THREADS"] = str(threads)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    return env


def qatc_openblas_core(qatc):
    """The OpenBLAS kernels qatc runs with (it logs them at debug level before any command runs)."""
    p = subprocess.run([qatc, "-v", "eval", "/nonexistent/train_speed_probe.ckpt"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    for line in p.stderr.splitlines():
        if "OpenBLAS kernels:" in line:
            return line.split("OpenBLAS kernels:", 1)[1].strip()
    return None


def openblas_correction():
    """What qatc's lib/core/blas_env.cpp would set OPENBLAS_CORETYPE to when OpenBLAS falls back to its
    generic kernels on this CPU."""
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if {"avx512f", "avx512bw", "avx512vl"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def torch_info(args):
    """Probes the PyTorch worker's environment and decides its OPENBLAS_CORETYPE (args.coretype)."""
    def probe(coretype):
        return json.loads(run_checked([args.python, os.path.join(HERE, "torch_models.py"), "--info"],
                                      env=torch_env(args.threads, coretype),
                                      what=f"import torch with {args.python} (run with /usr/bin/python3 "
                                      "after apt-get install python3-torch)"))
    args.coretype = None
    if args.torch_openblas_coretype not in ("auto", "keep"):
        args.coretype = args.torch_openblas_coretype
        return probe(args.coretype)
    info = probe(None)
    if (args.torch_openblas_coretype == "auto" and "OPENBLAS_CORETYPE" not in os.environ
            and info["openblas_core"] in torch_models.OPENBLAS_FALLBACK_CORES):
        args.coretype = openblas_correction()
        if args.coretype:
            info = probe(args.coretype)
    return info


def run_torch(args, spec, rep):
    cmd = [args.python, os.path.join(HERE, "torch_models.py"), "--recipe", spec["recipe"],
           "--epochs", str(args.epochs), "--threads", str(args.threads), "--seed", str(args.seed),
           "--init", args.init, "--json"]
    if args.no_mkldnn:
        cmd.append("--no-mkldnn")
    state = wait_for_idle(args.wait_idle)
    t0 = time.perf_counter()
    res = json.loads(run_checked(cmd, env=torch_env(args.threads, args.coretype),
                                 what="PyTorch training").strip().splitlines()[-1])
    wall = time.perf_counter() - t0
    epochs = res["epochs"]
    return dict(state, wall_seconds=wall, command=" ".join(cmd),
                seconds_per_epoch=statistics.mean(e["seconds"] for e in epochs),
                epoch_seconds=[e["seconds"] for e in epochs], steps_per_epoch=res["steps_per_epoch"],
                train_loss=epochs[-1]["loss"], val_accuracy=epochs[-1]["val_accuracy"],
                test_accuracy=res["test_accuracy"], torch_threads_seen=res["torch_threads"],
                mkldnn_enabled=res["mkldnn_enabled"], openblas_core=res["openblas_core"])


def summarize(runs):
    out = {"runs": runs,
           "seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in runs),
           "test_accuracy": statistics.median(r["test_accuracy"] for r in runs)}
    if all("qat_seconds_per_epoch" in r for r in runs):
        out["qat_seconds_per_epoch"] = statistics.median(r["qat_seconds_per_epoch"] for r in runs)
    return out


# ---------------------------------------------------------------------------------------------------------------

def print_table(rows, args):
    head = ["recipe", "ep", "qatc s/ep", "torch s/ep", "qatc/torch", "qatc QAT s/ep", "QAT/torch", "qatc img/s",
            "torch img/s",
            "qatc test", "torch test", "load qatc", "load torch"]
    lines = []
    for r in rows:
        q, t = r["qatc"], r["torch"]
        imgs = r["train_images"]
        lines.append([r["recipe"], str(args.epochs), f"{q['seconds_per_epoch']:.2f}", f"{t['seconds_per_epoch']:.2f}",
                      f"{r['ratio_qatc_over_torch']:.2f}", f"{q['qat_seconds_per_epoch']:.2f}",
                      f"{q['qat_seconds_per_epoch'] / t['seconds_per_epoch']:.2f}", f"{imgs / q['seconds_per_epoch']:.0f}",
                      f"{imgs / t['seconds_per_epoch']:.0f}", f"{100 * q['test_accuracy']:.2f}%",
                      f"{100 * t['test_accuracy']:.2f}%",
                      ",".join(f"{x['load_before'][0]:.2f}" for x in q["runs"]),
                      ",".join(f"{x['load_before'][0]:.2f}" for x in t["runs"])])
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    print(fmt(head))
    print("  ".join("-" * w for w in widths))
    for l in lines:
        print(fmt(l))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipes", nargs="*", default=DEFAULT_RECIPES, help="qatc recipe files (default: %(default)s)")
    ap.add_argument("--qatc", default="build/qatc", help="the qatc binary (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="qatc --threads and torch.set_num_threads")
    ap.add_argument("--epochs", type=int, default=1,
                    help="epochs on both sides (also the span of the cosine schedule, so both decay alike)")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per side; the median is reported")
    ap.add_argument("--seed", type=int, default=0, help="qatc --set seed=S and the PyTorch seed")
    ap.add_argument("--init", choices=["keras", "torch"], default="keras",
                    help="PyTorch-side initialization (keras = Glorot-uniform, like qatc)")
    ap.add_argument("--no-mkldnn", action="store_true", help="run PyTorch with torch.backends.mkldnn disabled")
    ap.add_argument("--torch-openblas-coretype", default="auto", metavar="auto|keep|NAME",
                    help="OPENBLAS_CORETYPE for the PyTorch worker. auto (default): when OpenBLAS falls back to "
                    "its generic SSE3 kernels, correct it as qatc does; keep: leave OpenBLAS's choice")
    ap.add_argument("--torch-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the PyTorch worker, e.g. OMP_WAIT_POLICY=passive (repeatable)")
    ap.add_argument("--wait-idle", action="store_true",
                    help=f"before each timed run wait up to {IDLE_WAIT_S} s for the 1-min load to drop below {IDLE_LOAD}")
    ap.add_argument("--python", default=sys.executable, help="interpreter with torch for the PyTorch worker")
    ap.add_argument("--keep", metavar="DIR", help="keep the qatc run folders under DIR (default: a temp dir, removed)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = ap.parse_args()
    if args.epochs < 1 or args.repeats < 1 or args.threads < 1:
        ap.error("--epochs, --repeats and --threads must be >= 1")
    if not os.access(args.qatc, os.X_OK):
        ap.error(f"--qatc {args.qatc}: not an executable; build it or pass its path")
    for kv in args.torch_env:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            ap.error(f"--torch-env {kv!r}: expected KEY=VALUE")
        EXTRA_TORCH_ENV[key] = value

    try:
        specs = [spec_for_recipe(p) for p in args.recipes]
        info = torch_info(args)
    except BenchError as e:
        print(f"train_speed: {e}", file=sys.stderr)
        return 1
    qatc_version = subprocess.run([args.qatc, "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
    qatc_blas = qatc_openblas_core(args.qatc)
    machine = {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "cpus": os.cpu_count(),
               "affinity": len(os.sched_getaffinity(0)), "load_at_start": [round(x, 2) for x in os.getloadavg()]}
    print(f"CPU: {machine['cpu']} ({machine['cpus']} CPUs, {machine['affinity']} usable; "
          f"{' '.join(machine['cpu_flags'])})")
    print(f"qatc: {args.qatc} ({qatc_version}), OpenBLAS kernels {qatc_blas}")
    print(f"PyTorch {info['torch_version']} eager: mkldnn (oneDNN) available={info['mkldnn_available']} "
          f"used={not args.no_mkldnn and info['mkldnn_available']}, MKL={info['mkl_available']}, OpenBLAS kernels "
          f"{info['openblas_core']}" + (f" (OPENBLAS_CORETYPE={args.coretype} set by this script)"
                                         if args.coretype else ""))
    print(f"threads {args.threads}, epochs {args.epochs}, repeats {args.repeats}, seed {args.seed}, "
          f"torch init {args.init}" + (f", torch env {' '.join(args.torch_env)}" if args.torch_env else "") +
          f"; load at start {machine['load_at_start']}")

    workdir = args.keep or tempfile.mkdtemp(prefix="qatc_train_speed_")
    os.makedirs(workdir, exist_ok=True)
    rows = []
    try:
        for spec in specs:
            q_runs, t_runs = [], []
            for rep in range(args.repeats):
                # Alternate the sides so a drift in machine load hits both alike.
                q_runs.append(run_qatc(args, spec, workdir, rep))
                print(f"  {spec['recipe']} qatc  #{rep + 1}: {q_runs[-1]['seconds_per_epoch']:.2f} s/epoch "
                      f"(QAT {q_runs[-1]['qat_seconds_per_epoch']:.2f}), "
                      f"test {100 * q_runs[-1]['test_accuracy']:.2f}%, load before {q_runs[-1]['load_before']}",
                      flush=True)
                t_runs.append(run_torch(args, spec, rep))
                print(f"  {spec['recipe']} torch #{rep + 1}: {t_runs[-1]['seconds_per_epoch']:.2f} s/epoch, "
                      f"test {100 * t_runs[-1]['test_accuracy']:.2f}%, load before {t_runs[-1]['load_before']}",
                      flush=True)
            q, t = summarize(q_runs), summarize(t_runs)
            n_train = int(60000 * (1 - spec["validation_split"]))
            rows.append({"recipe": spec["recipe"], "file": spec["file"], "train_images": n_train,
                         "qatc": q, "torch": t,
                         "ratio_qatc_over_torch": q["seconds_per_epoch"] / t["seconds_per_epoch"],
                         "ratio_qatc_qat_over_torch": q["qat_seconds_per_epoch"] / t["seconds_per_epoch"]})
    except BenchError as e:
        print(f"train_speed: {e}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print_table(rows, args)
    if any(not r["idle"] for row in rows for side in ("qatc", "torch") for r in row[side]["runs"]):
        print(f"\nnote: some runs started with a 1-min load >= {IDLE_LOAD}. Part of it may be the previous run's own "
              "tail (the average decays over minutes), but timings taken while other work runs are not comparable")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "torch": info, "qatc_version": qatc_version,
                       "qatc_openblas_core": qatc_blas, "args": vars(args),
                       "results": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
