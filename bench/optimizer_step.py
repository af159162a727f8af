#!/usr/bin/env python3
"""Optimizer-step timings: gradus against PyTorch on the CPU, on one flat float32 parameter.

    python3 bench/optimizer_step.py                    # 50M parameters, 2 threads
    python3 bench/optimizer_step.py --params 5000000   # a quicker check
    python3 bench/optimizer_step.py --small            # 1,000 parameters: per-step overhead
    python3 bench/optimizer_step.py --markdown out.md  # also write the table to a file

On first use it creates bench/.venv and installs PyTorch there from PyPI, then re-runs itself
with that interpreter. It builds gradus' `optimizer_step_timing` example in release mode, times
gradus (one subprocess per optimizer) and PyTorch (in this process) in turn, and prints a
markdown table to stdout; progress goes to stderr.

Each configuration is timed in `--rounds` rounds (gradus, then each PyTorch variant, per
optimizer); a round's figure is the median of `--reps` steps and the table shows the best round,
which keeps a burst of load from a neighbour on a shared machine out of the comparison; before
each measurement the script also waits (up to `--quiet-wait` seconds) for the CPUs to be idle. The
streaming bandwidth (a STREAM triad over three 256 MiB arrays, with the same threads) is measured
before and after every round and the best figure is used.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
# torch's pure-python dependencies: with them, the torch wheel alone may import on a CPU-only
# machine, which spares the gigabytes of CUDA libraries its full dependency list pulls in.
TORCH_LIGHT_DEPS = ["filelock", "typing-extensions", "sympy", "networkx", "jinja2", "fsspec", "numpy"]


class Spec:
    """One benchmarked configuration."""

    def __init__(self, label, name, options, torch_class, buffers, target):
        self.label = label  # shown in the table
        self.name = name  # gradus' from_options name
        self.options = options  # PyTorch option names; passed to both sides
        self.torch_class = torch_class  # torch.optim class name, None where PyTorch has none
        # f32 buffers read plus written per element per step (p, g and state read; p and state
        # written): the least memory traffic any implementation needs.
        self.buffers = buffers
        # "fused": gradus must take <= 0.9x PyTorch fused; "foreach": <= 0.5x PyTorch foreach.
        self.target = target


SPECS = [
    # reads p, g, momentum_buffer; writes p, momentum_buffer
    Spec("sgd (momentum 0.9)", "sgd", {"momentum": 0.9}, "SGD", 5, "fused"),
    # reads p, g, exp_avg, exp_avg_sq; writes p, exp_avg, exp_avg_sq
    Spec("adam", "adam", {}, "Adam", 7, "fused"),
    Spec("adamw", "adamw", {}, "AdamW", 7, "fused"),
    # reads p, g, sum; writes p, sum
    Spec("adagrad", "adagrad", {}, "Adagrad", 5, "fused"),
    # reads p, g, square_avg; writes p, square_avg
    Spec("rmsprop", "rmsprop", {}, "RMSprop", 5, "foreach"),
    # reads p, g, square_avg, acc_delta; writes p, square_avg, acc_delta
    Spec("adadelta", "adadelta", {}, "Adadelta", 7, "foreach"),
    # reads p, g, exp_avg, exp_inf; writes p, exp_avg, exp_inf
    Spec("adamax", "adamax", {}, "Adamax", 7, "foreach"),
    Spec("nadam", "nadam", {}, "NAdam", 7, "foreach"),
    Spec("radam", "radam", {}, "RAdam", 7, "foreach"),
    # reads p, g, exp_avg; writes p, exp_avg
    Spec("lion", "lion", {}, None, 5, None),
]

FUSED_RATIO = 0.9
FOREACH_RATIO = 0.5
SMALL_PARAMS = 1000
SMALL_LIMIT_S = 2e-6


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- environment -------------------------------------------------------------------------------


def torch_imports(python: Path) -> bool:
    probe = "import torch; t = torch.ones(4); t.mul_(2); assert float(t.sum()) == 8.0"
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return result.returncode == 0


def ensure_venv() -> None:
    """Creates bench/.venv with PyTorch when missing and re-executes this script inside it."""
    if not VENV_PYTHON.exists():
        log(f"creating {VENV}")
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    if not torch_imports(VENV_PYTHON):
        pip = [str(VENV_PYTHON), "-m", "pip", "install", "--quiet"]
        log("installing torch (wheel only) and its pure-python dependencies")
        subprocess.check_call(pip + ["--no-deps", "torch"])
        subprocess.check_call(pip + TORCH_LIGHT_DEPS)
        if not torch_imports(VENV_PYTHON):
            log("torch does not import without its CUDA libraries; installing it with all dependencies")
            subprocess.check_call(pip + ["torch"])
        if not torch_imports(VENV_PYTHON):
            sys.exit("PyTorch was installed in bench/.venv but `import torch` still fails")
    if Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])


def build_timing_binary(native: bool) -> Path:
    """Builds the example in release mode and returns the executable's path."""
    command = ["cargo", "build", "--release", "--example", "optimizer_step_timing", "--message-format=json"]
    env = dict(os.environ)
    if native:
        # A separate target directory keeps the portable build's cache intact.
        env["RUSTFLAGS"] = (env.get("RUSTFLAGS", "") + " -C target-cpu=native").strip()
        command += ["--target-dir", str(ROOT / "target" / "bench-native")]
    log("building: " + " ".join(command))
    result = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.exit("cargo build failed")
    for line in result.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("target", {}).get("name") == (
            "optimizer_step_timing"
        ):
            if message.get("executable"):
                return Path(message["executable"])
    sys.exit("cargo did not report the optimizer_step_timing executable")


def machine_description() -> str:
    model, cores = platform.processor() or "unknown CPU", os.cpu_count()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory = f", {int(line.split()[1]) / 2**20:.1f} GiB memory"
    except OSError:
        pass
    return f"{model}, {cores} logical CPUs{memory}"


# --- measurements ------------------------------------------------------------------------------


def cpu_busy_fraction(interval: float = 0.25) -> float:
    """Fraction of all CPUs busy over `interval` seconds (from /proc/stat; 0 where unreadable)."""

    def sample():
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_for_quiet(max_wait: float, threshold: float = 0.15) -> None:
    """Waits (at most `max_wait` seconds) until other processes leave the CPUs nearly idle, so that
    a build or test run elsewhere on a small shared machine does not distort a measurement."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy_fraction()
    while busy > threshold and time.monotonic() < deadline:
        busy = cpu_busy_fraction(0.5)
    if busy > threshold:
        log(f"  (machine still {busy:.0%} busy after {max_wait:.0f} s; measuring anyway)")


def run_gradus(binary: Path, spec: Spec, params: int, threads: int, warmup: int, reps: int, inner: int):
    """Seconds per step (median of reps), or None with the reason when gradus cannot run it."""
    command = [
        str(binary),
        "--optimizer", spec.name,
        "--options", json.dumps(spec.options),
        "--params", str(params),
        "--threads", str(threads),
        "--warmup", str(warmup),
        "--reps", str(reps),
        "--inner", str(inner),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
        if "optimizers gradus knows" in reason:
            reason = "not present"
        return None, reason
    return json.loads(result.stdout)["median_s"], None


def run_stream(binary: Path, threads: int, elements: int, reps: int) -> dict:
    command = [str(binary), "--stream", "--threads", str(threads), "--stream-elems", str(elements)]
    result = subprocess.run(command + ["--reps", str(reps)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def torch_variant_kwargs(spec: Spec, variant: str):
    if variant == "fused":
        return {"fused": True}
    return {"foreach": variant == "foreach"}


def run_torch(torch, spec: Spec, variant: str, params: int, warmup: int, reps: int, inner: int):
    """Seconds per step (median of reps) of torch.optim on one flat parameter, or None and why."""
    if spec.torch_class is None:
        return None, "not in PyTorch"
    cls = getattr(torch.optim, spec.torch_class)
    generator = torch.Generator().manual_seed(0)
    param = torch.empty(params, dtype=torch.float32).uniform_(-1.0, 1.0, generator=generator)
    param.requires_grad_(True)
    param.grad = torch.empty(params, dtype=torch.float32).uniform_(-0.1, 0.1, generator=generator)
    try:
        optimizer = cls([param], **spec.options, **torch_variant_kwargs(spec, variant))
        # The first step allocates state; warm-up steps pay for it, not the samples.
        for _ in range(max(1, warmup)):
            optimizer.step()
    except (RuntimeError, TypeError, ValueError) as error:
        return None, str(error).splitlines()[0][:80]
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(inner):
            optimizer.step()
        samples.append((time.perf_counter() - start) / inner)
    del optimizer, param
    gc.collect()
    return statistics.median(samples), None


VARIANTS = ["fused", "foreach", "single"]


def measure(args, binary: Path, torch) -> dict:
    """All timings, best round of each; plus the stream bandwidth when timing large buffers."""
    small = args.small
    params = SMALL_PARAMS if small else args.params
    best = {}  # (label, side) -> seconds
    reasons = {}
    streams = []

    def keep(key, seconds, reason):
        if seconds is None:
            reasons[key] = reason
        elif key not in best or seconds < best[key]:
            best[key] = seconds

    def stream():
        if not small:
            wait_for_quiet(args.quiet_wait)
            result = run_stream(binary, args.threads, args.stream_elems, args.stream_reps)
            streams.append(result)
            log(f"  stream triad {result['triad_bytes_per_s'] / 1e9:.1f} GB/s")

    for round_index in range(args.rounds):
        log(f"round {round_index + 1}/{args.rounds}")
        stream()
        for spec in SPECS:
            wait_for_quiet(args.quiet_wait)
            if small:
                seconds, reason = run_gradus(binary, spec, params, args.threads, 1000, args.small_reps, 1000)
            else:
                seconds, reason = run_gradus(binary, spec, params, args.threads, args.warmup, args.reps, 1)
            keep((spec.label, "gradus"), seconds, reason)
            shown = f"{seconds * 1e3:.3f} ms" if seconds is not None else reason
            log(f"  {spec.label:20s} gradus {shown}")
            for variant in VARIANTS:
                if variant == "fused" and spec.target != "fused":
                    continue
                wait_for_quiet(args.quiet_wait)
                if small:
                    seconds, reason = run_torch(torch, spec, variant, params, 100, args.small_reps * 10, 1)
                else:
                    seconds, reason = run_torch(torch, spec, variant, params, args.warmup, args.reps, 1)
                keep((spec.label, variant), seconds, reason)
                shown = f"{seconds * 1e3:.3f} ms" if seconds is not None else reason
                log(f"  {spec.label:20s} torch {variant} {shown}")
        stream()
    return {"params": params, "best": best, "reasons": reasons, "streams": streams}


# --- report ------------------------------------------------------------------------------------


def judge(spec: Spec, best: dict):
    """(gradus/fused, gradus/foreach, target text, verdict)."""
    gradus = best.get((spec.label, "gradus"))
    fused = best.get((spec.label, "fused"))
    foreach = best.get((spec.label, "foreach"))
    fused_ratio = gradus / fused if gradus is not None and fused is not None else None
    foreach_ratio = gradus / foreach if gradus is not None and foreach is not None else None
    if spec.target == "fused":
        target, ratio = f"<= {FUSED_RATIO}x fused", fused_ratio
        limit = FUSED_RATIO
    elif spec.target == "foreach":
        target, ratio = f"<= {FOREACH_RATIO}x foreach", foreach_ratio
        limit = FOREACH_RATIO
    else:
        return fused_ratio, foreach_ratio, "none (not in PyTorch)", "-"
    if gradus is None:
        verdict = "not present"
    elif ratio is None:
        verdict = "n/a"
    else:
        verdict = "PASS" if ratio <= limit else "FAIL"
    return fused_ratio, foreach_ratio, target, verdict


def fmt_time(seconds, scale, digits):
    return "-" if seconds is None else f"{seconds * scale:.{digits}f}"


def fmt_ratio(ratio):
    return "-" if ratio is None else f"{ratio:.2f}"


def report(args, results: dict, header: str) -> str:
    best, params = results["best"], results["params"]
    lines = [header, ""]
    if args.small:
        lines += [
            f"| optimizer | gradus µs | torch fused µs | torch foreach µs | torch single µs "
            f"| gradus/fused | gradus/foreach | target | result |",
            "|---|--:|--:|--:|--:|--:|--:|---|---|",
        ]
        for spec in SPECS:
            gradus = best.get((spec.label, "gradus"))
            fused_ratio, foreach_ratio, _, _ = judge(spec, best)
            if gradus is None:
                verdict = results["reasons"].get((spec.label, "gradus"), "-")
            else:
                verdict = "PASS" if gradus < SMALL_LIMIT_S else "FAIL"
            cells = [spec.label, fmt_time(gradus, 1e6, 3)]
            cells += [fmt_time(best.get((spec.label, v)), 1e6, 1) for v in VARIANTS]
            cells += [fmt_ratio(fused_ratio), fmt_ratio(foreach_ratio), f"< {SMALL_LIMIT_S * 1e6:.0f} µs", verdict]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    triad = max(s["triad_bytes_per_s"] for s in results["streams"])
    update = max(s["update_bytes_per_s"] for s in results["streams"])
    # The update kernel reads and rewrites its target as an optimizer does; the triad's write-only
    # target also costs a hidden read (write-allocate), so it reports less. Use the better one.
    bandwidth = max(triad, update)
    lines += [
        "| optimizer | gradus ms | torch fused ms | torch foreach ms | torch single ms | gradus/fused "
        "| gradus/foreach | target | result | bytes/elem | gradus GB/s | of stream | fastest torch of stream |",
        "|---|--:|--:|--:|--:|--:|--:|---|---|--:|--:|--:|--:|",
    ]
    for spec in SPECS:
        gradus = best.get((spec.label, "gradus"))
        fused_ratio, foreach_ratio, target, verdict = judge(spec, best)
        bytes_per_step = 4 * spec.buffers * params
        cells = [spec.label, fmt_time(gradus, 1e3, 2)]
        cells += [fmt_time(best.get((spec.label, v)), 1e3, 2) for v in VARIANTS]
        cells += [fmt_ratio(fused_ratio), fmt_ratio(foreach_ratio), target, verdict, str(4 * spec.buffers)]
        if gradus is None:
            cells += ["-", "-"]
        else:
            cells += [f"{bytes_per_step / gradus / 1e9:.1f}", f"{bytes_per_step / gradus / bandwidth:.0%}"]
        torch_times = [best[(spec.label, v)] for v in VARIANTS if (spec.label, v) in best]
        cells.append(f"{bytes_per_step / min(torch_times) / bandwidth:.0%}" if torch_times else "-")
        lines.append("| " + " | ".join(cells) + " |")
    triads = ", ".join(f"{s['triad_bytes_per_s'] / 1e9:.1f}" for s in results["streams"])
    updates = ", ".join(f"{s['update_bytes_per_s'] / 1e9:.1f}" for s in results["streams"])
    array_mib = results["streams"][0]["array_bytes"] / 2**20
    lines += [
        "",
        f"Streaming bandwidth with {args.threads} threads over {array_mib:.0f} MiB arrays, 12 bytes counted per "
        f"element: triad a = b + s·c best {triad / 1e9:.1f} GB/s (runs: {triads}); update a = a + s·b best "
        f"{update / 1e9:.1f} GB/s (runs: {updates}). `bytes/elem` counts the f32 buffers an optimizer must read "
        f"and write per parameter; `of stream` is that traffic per gradus step over {bandwidth / 1e9:.1f} GB/s, "
        "the better of the two; `fastest torch of stream` is the same for the fastest PyTorch variant.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=int, default=50_000_000, help="parameters (default 50,000,000)")
    parser.add_argument("--threads", type=int, default=2, help="threads for gradus and torch (default 2)")
    parser.add_argument("--reps", type=int, default=10, help="timed steps per measurement (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best is shown (default 3)")
    parser.add_argument("--small", action="store_true", help=f"time {SMALL_PARAMS:,} parameters instead")
    parser.add_argument(
        "--small-reps", type=int, default=200, help="--small: gradus samples of 1,000 steps each (default 200)"
    )
    parser.add_argument("--stream-elems", type=int, default=64 << 20, help="elements per stream array")
    parser.add_argument("--stream-reps", type=int, default=10, help="stream triad repetitions (default 10)")
    parser.add_argument("--only", help="comma-separated gradus names to run (default all)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="seconds to wait for other processes to leave the CPUs idle before each measurement (default 60)",
    )
    parser.add_argument("--native", action="store_true", help="build gradus with -C target-cpu=native")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--json", type=Path, help="write the raw best timings to this file")
    parser.add_argument("--no-venv", action="store_true", help="use this interpreter's torch, not bench/.venv")
    args = parser.parse_args()

    if not args.no_venv:
        ensure_venv()
    import torch

    global SPECS
    if args.only:
        wanted = set(args.only.split(","))
        SPECS = [s for s in SPECS if s.name in wanted]

    binary = build_timing_binary(args.native)
    torch.set_num_threads(args.threads)
    results = measure(args, binary, torch)

    params = results["params"]
    header = (
        f"Optimizer step, {params:,} float32 parameters, {args.threads} threads; "
        f"{'1,000 steps per sample, ' + str(args.small_reps) + ' samples' if args.small else str(args.reps) + ' steps'}"
        f", best of {args.rounds} rounds (median per round).  \n"
        f"Machine: {machine_description()}; PyTorch {torch.__version__}"
        f"{' (gradus built with target-cpu=native)' if args.native else ''}; "
        f"{time.strftime('%Y-%m-%d')}."
    )
    table = report(args, results, header)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        raw = {f"{label}/{side}": seconds for (label, side), seconds in results["best"].items()}
        raw["streams"] = results["streams"]
        args.json.write_text(json.dumps(raw, indent=1) + "\n")


if __name__ == "__main__":
    main()
