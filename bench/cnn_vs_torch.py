#!/usr/bin/env python3
"""CNN training speed and accuracy: `gradus train` against PyTorch on the CPU, LeNet-5 on Fashion-MNIST.

    python3 bench/cnn_vs_torch.py                  # 3 rounds, 3 epochs, 2 threads
    python3 bench/cnn_vs_torch.py --rounds 5       # steadier medians on a busy machine
    python3 bench/cnn_vs_torch.py --threads 1      # both sides on one thread
    python3 bench/cnn_vs_torch.py --build          # cargo build --release -p gradus-cli first
    python3 bench/cnn_vs_torch.py --breakdown      # PyTorch only: time per module type over one epoch

The target (the project's issue): with SGD lr 0.05 momentum 0.9, batch 64, 3 epochs and 2 threads,
gradus' test accuracy is within 0.5 points of PyTorch's (gradus >= PyTorch - 0.5) and a gradus
training epoch takes at most 0.7 x PyTorch's.

Data: Fashion-MNIST's IDX files as Debian's package `dataset-fashion-mnist` installs them, in
/usr/share/datasets/fashion-mnist/ (or $GRADUS_DATA_DIR/fashion-mnist/ when GRADUS_DATA_DIR is
set): 60,000 training and 10,000 test images of 28x28 pixels. Pixels are scaled to [0, 1] as
float32 (x / 255) and nothing else (no mean/std normalization), which is what gradus does with
image data, so both sides see the same numbers; images are N x 1 x 28 x 28.

The network is the classic LeNet-5 (with relu and max pooling):
    conv2d(6, 5x5, padding 2), relu, max_pool2d(2), conv2d(16, 5x5), relu, max_pool2d(2), flatten,
    linear(400 -> 120), relu, linear(120 -> 84), relu, linear(84 -> 10)
with cross-entropy, mini-batches of 64 shuffled each epoch, and SGD (lr 0.05, momentum 0.9).

Each round r = 0, 1, ... runs gradus, then PyTorch, both with the seed --seed + r:

  * gradus as a user runs it, in a subprocess: `gradus train --dataset fashion_mnist --model cnn
    --layers ... --val-fraction 0 --save MODEL --metrics-json OUT.json --quiet`, then
    `gradus evaluate MODEL --dataset fashion_mnist_test --json` for the test accuracy. The epoch
    times are the ones gradus itself reports: the `history` records of --metrics-json carry
    `seconds` since training started, so epoch k takes seconds[k] - seconds[k-1] (whatever gradus
    does within an epoch counts, its end-of-epoch metrics included). The wall time of the whole
    `gradus train` command (process start, data loading, saving) is shown too. If the binary is
    missing or fails, the gradus half is skipped with a note on stderr and the PyTorch half runs.
  * PyTorch in this process, torch.set_num_threads(--threads), default initialization
    (torch.manual_seed(seed)), shuffling with a torch.Generator seeded with the seed. Only the
    training loop over tensors already in memory is timed, one epoch at a time; after each epoch
    the test accuracy on the 10,000 test images is computed, untimed.

Before each run the script waits (up to --quiet-wait seconds) for other processes to leave the
CPUs idle, and it logs how busy they kept the CPUs during each measurement: on a small shared
machine a build next door slows PyTorch's spinning OpenMP threads many times over.

The table (Markdown, on stdout, for BENCHMARKS.md) shows the median epoch time of each side over
all epochs of all rounds, the median final test accuracy over the rounds, the ratio gradus /
PyTorch of the median epoch times and the accuracy difference against their targets, and each
round's per-epoch figures. Progress goes to stderr.

--breakdown trains PyTorch only (no gradus, no rounds): one plain epoch (its time is the
reference), then one epoch timed layer by layer, and reports the forward and backward seconds of
each module type (conv, pool, relu, linear, flatten), of the loss, and of the rest of a step (the
optimizer step, zero_grad, batch gathering, shuffling), and of each layer, for comparison with
gradus' own breakdown. It times by hand (perf_counter around each layer's forward and around a
layer-by-layer backward pass; see timed_epoch) rather than with torch.profiler, whose cost per
recorded operation (several times the epoch on this LeNet) would swamp the small layers.

On first use it creates bench/.venv and installs PyTorch there (the wheel alone plus its
pure-python dependencies, as bench/mlp_vs_torch.py does; with all dependencies if that does not
import; it reuses that environment), then re-runs itself with that interpreter.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
TORCH_LIGHT_DEPS = ["filelock", "typing-extensions", "sympy", "networkx", "jinja2", "fsspec", "numpy"]
DEFAULT_DATA_DIR = Path("/usr/share/datasets")
GRADUS = ROOT / "target" / "release" / "gradus"
LAYERS = ("conv2d(6,5,padding=2),relu,max_pool2d(2),conv2d(16,5),relu,max_pool2d(2),flatten,"
          "linear(120),relu,linear(84),relu,linear(10)")
LR = 0.05
MOMENTUM = 0.9
BATCH = 64
TARGET_RATIO = 0.7
TARGET_ACCURACY_POINTS = 0.5
QUIET = 0.15  # the CPUs count as idle when other processes use at most this fraction of them


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def torch_imports(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import torch, numpy"], capture_output=True).returncode == 0


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


# --- data ------------------------------------------------------------------------------------

def data_dir() -> Path:
    base = os.environ.get("GRADUS_DATA_DIR")
    return (Path(base) if base else DEFAULT_DATA_DIR) / "fashion-mnist"


def read_idx(path: Path):
    """An IDX file (gzip-compressed) as a numpy array of its dimensions."""
    import numpy as np

    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise ValueError(f"{path}: unknown IDX element type 0x{raw[2]:02x}")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    values = np.frombuffer(raw, dtype=dtypes[raw[2]], offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {values.size} values for dimensions {shape}")
    return values.reshape(shape)


def load_fashion_mnist():
    """(x_train, y_train, x_test, y_test): images N x 1 x 28 x 28 float32 in [0, 1], labels int64."""
    import numpy as np

    folder = data_dir()
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    missing = [n for n in names if not (folder / n).exists()]
    if missing:
        sys.exit(f"Fashion-MNIST not found in {folder} (missing {', '.join(missing)}): "
                 "install Debian's package dataset-fashion-mnist, or set GRADUS_DATA_DIR")
    arrays = [read_idx(folder / n) for n in names]
    out = []
    for images, labels in (arrays[0:2], arrays[2:4]):
        x = (images.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, images.shape[1], images.shape[2])
        out += [np.ascontiguousarray(x), labels.astype(np.int64)]
    return tuple(out)


# --- PyTorch ---------------------------------------------------------------------------------

def lenet5():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def train_epoch(model, optimizer, x, y, generator, limit: int | None = None) -> None:
    """One epoch of shuffled mini-batches (the first `limit` batches only, when given)."""
    import torch.nn.functional as F
    import torch

    rows = x.shape[0]
    order = torch.randperm(rows, generator=generator)
    for b, i in enumerate(range(0, rows, BATCH)):
        if limit is not None and b >= limit:
            break
        index = order[i : i + BATCH]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[index]), y[index])
        loss.backward()
        optimizer.step()


def test_accuracy(model, x, y) -> float:
    import torch

    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], 1000):
            correct += (model(x[i : i + 1000]).argmax(dim=1) == y[i : i + 1000]).sum().item()
    return correct / x.shape[0]


def new_run(seed: int):
    import torch

    torch.manual_seed(seed)
    model = lenet5()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    return model, optimizer, torch.Generator().manual_seed(seed)


def run_torch(tensors, epochs: int, seed: int) -> dict:
    """Per-epoch training seconds and test accuracy after each epoch."""
    x_train, y_train, x_test, y_test = tensors
    model, optimizer, generator = new_run(seed)
    seconds, accuracy, others = [], [], []
    for epoch in range(epochs):
        with OthersLoad() as load:
            start = time.perf_counter()
            train_epoch(model, optimizer, x_train, y_train, generator)
            seconds.append(time.perf_counter() - start)
        others.append(load.fraction)
        accuracy.append(test_accuracy(model, x_test, y_test))
        log(f"  torch epoch {epoch + 1}: {seconds[-1]:.2f} s, test accuracy {100 * accuracy[-1]:.2f}% "
            f"(other processes kept {load.fraction:.0%} of the CPUs busy)")
    return {"epoch_seconds": seconds, "accuracy": accuracy, "others": others}


def warm_up_torch(tensors) -> None:
    """A few untimed steps on a throwaway model: thread pool, allocator, first-call dispatch."""
    model, optimizer, generator = new_run(12345)
    train_epoch(model, optimizer, tensors[0], tensors[1], generator, limit=30)


# --- gradus ----------------------------------------------------------------------------------

def tail(text: str, lines: int = 8) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def run_gradus(binary: Path, epochs: int, threads: int, seed: int) -> dict | None:
    """`gradus train` then `gradus evaluate` in subprocesses; None (and a note) when either fails."""
    if not binary.exists():
        log(f"  gradus: {binary} not found (build it with --build); skipping the gradus half")
        return None
    with tempfile.TemporaryDirectory(prefix="gradus-cnn-bench-") as tmp:
        model_path = Path(tmp) / "lenet5.model"
        metrics_path = Path(tmp) / "metrics.json"
        train = [str(binary), "train", "--dataset", "fashion_mnist", "--model", "cnn", "--layers", LAYERS,
                 "--optimizer", "momentum", "--lr", str(LR), "--momentum", str(MOMENTUM),
                 "--batch-size", str(BATCH), "--epochs", str(epochs), "--threads", str(threads),
                 "--val-fraction", "0", "--seed", str(seed), "--save", str(model_path),
                 "--metrics-json", str(metrics_path), "--quiet"]
        with OthersLoad() as load:
            start = time.perf_counter()
            done = subprocess.run(train, capture_output=True, text=True, cwd=ROOT)
            wall = time.perf_counter() - start
        if done.returncode != 0:
            log(f"  gradus train failed (exit {done.returncode}); skipping the gradus half:\n"
                f"{tail(done.stderr or done.stdout)}")
            return None
        try:
            history = json.loads(metrics_path.read_text())["history"]
            cumulative = [float(record["seconds"]) for record in sorted(history, key=lambda r: r["epoch"])]
        except (OSError, ValueError, KeyError, TypeError) as e:
            log(f"  gradus: cannot read the epoch times from {metrics_path.name} ({e}); skipping the gradus half")
            return None
        seconds = [b - a for a, b in zip([0.0] + cumulative, cumulative)]
        evaluate = [str(binary), "evaluate", str(model_path), "--dataset", "fashion_mnist_test", "--json"]
        done = subprocess.run(evaluate, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            log(f"  gradus evaluate failed (exit {done.returncode}); skipping the gradus half:\n"
                f"{tail(done.stderr or done.stdout)}")
            return None
        try:
            accuracy = float(json.loads(done.stdout)["metrics"]["accuracy"])
        except (ValueError, KeyError, TypeError) as e:
            log(f"  gradus evaluate: no metrics.accuracy in its JSON ({e}); skipping the gradus half")
            return None
    if accuracy > 1.0:  # a percentage
        accuracy /= 100.0
    for epoch, s in enumerate(seconds):
        log(f"  gradus epoch {epoch + 1}: {s:.2f} s")
    log(f"  gradus: test accuracy {100 * accuracy:.2f}%, `gradus train` wall time {wall:.2f} s "
        f"(other processes kept {load.fraction:.0%} of the CPUs busy)")
    return {"epoch_seconds": seconds, "accuracy": [accuracy], "wall": wall, "others": [load.fraction]}


def build_gradus() -> bool:
    log("cargo build --release -p gradus-cli")
    if subprocess.run(["cargo", "build", "--release", "-p", "gradus-cli"], cwd=ROOT).returncode != 0:
        log("the build failed; the gradus half is skipped")
        return False
    return True


# --- machine ---------------------------------------------------------------------------------

def cpu_seconds() -> tuple[float, float]:
    """(busy CPU-seconds of the whole machine since boot, from /proc/stat; this process' CPU-seconds)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - (fields[4] if len(fields) > 4 else 0)) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        busy = 0.0
    own = os.times()
    return busy, own.user + own.system + own.children_user + own.children_system


class OthersLoad:
    """How busy other processes kept the CPUs while a measurement ran: a fraction of all CPUs."""

    def __enter__(self):
        self.start, self.wall = cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *_):
        (busy0, own0), (busy1, own1) = self.start, cpu_seconds()
        wall = time.perf_counter() - self.wall
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / max(1e-9, wall * usable_cpus())
        self.fraction = min(1.0, others)


def wait_for_quiet(max_wait: float, threshold: float = QUIET) -> None:
    """Waits (at most `max_wait` seconds) until other processes leave the CPUs nearly idle, so that
    a build or test run elsewhere on a small shared machine does not distort a measurement."""
    deadline = time.monotonic() + max_wait
    while True:
        busy0, wall0 = cpu_seconds()[0], time.perf_counter()
        time.sleep(0.5)
        busy = min(1.0, (cpu_seconds()[0] - busy0) / ((time.perf_counter() - wall0) * usable_cpus()))
        if busy <= threshold or time.monotonic() >= deadline:
            break
    if busy > threshold and max_wait > 0:
        log(f"  (the CPUs are still {busy:.0%} busy after waiting {max_wait:.0f} s; measuring anyway)")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def gradus_version(binary: Path) -> str:
    version = "gradus (binary missing)"
    if binary.exists():
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
        version = done.stdout.strip() or "gradus (version unknown)"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    if commit.returncode == 0:
        version += f", commit {commit.stdout.strip()}"
    return version


def machine_line(threads: int, binary: Path | None) -> str:
    """CPU, torch version and threads, and gradus' version unless `binary` is None (PyTorch only)."""
    import torch

    line = f"{cpu_model()}, {usable_cpus()} usable CPUs ({os.cpu_count()} online); torch {torch.__version__}; "
    line += f"{threads} thread{'s' if threads != 1 else ''}"
    return line + (f" on both sides; {gradus_version(binary)}" if binary is not None else "")


# --- breakdown -------------------------------------------------------------------------------

def layer_label(module) -> tuple[str, str]:
    """(module type, description) of one LeNet-5 layer."""
    import torch.nn as nn

    if isinstance(module, nn.Conv2d):
        pad = f", padding {module.padding[0]}" if module.padding[0] else ""
        height, width = module.kernel_size
        return "conv", f"conv2d {module.in_channels}->{module.out_channels} {height}x{width}{pad}"
    if isinstance(module, nn.MaxPool2d):
        return "pool", f"max_pool2d {module.kernel_size}"
    if isinstance(module, nn.ReLU):
        return "relu", "relu"
    if isinstance(module, nn.Linear):
        return "linear", f"linear {module.in_features}->{module.out_features}"
    if isinstance(module, nn.Flatten):
        return "flatten", "flatten"
    return type(module).__name__.lower(), type(module).__name__


def timed_epoch(model, optimizer, x, y, generator) -> tuple[list[float], list[float], dict[str, float]]:
    """One training epoch that times each layer's forward and backward: (forward s, backward s, rest).

    The layers run one at a time: each layer's input is its predecessor's output detached (a leaf
    that requires grad), so the backward pass can be driven layer by layer, from the loss down,
    with `out.backward(grad)`, and timed around each call. Each backward call pays the autograd
    engine's start-up (some microseconds), which a single `loss.backward()` pays once; the
    arithmetic is the same as in train_epoch.
    """
    import torch
    import torch.nn.functional as F

    layers = list(model)
    forward, backward = [0.0] * len(layers), [0.0] * len(layers)
    rest = {"shuffle": 0.0, "batch gathering (x[index], y[index])": 0.0, "zero_grad": 0.0,
            "loss forward (cross-entropy)": 0.0, "loss backward": 0.0, "optimizer step": 0.0}
    clock = time.perf_counter
    rows = x.shape[0]
    t = clock()
    order = torch.randperm(rows, generator=generator)
    rest["shuffle"] += clock() - t
    for i in range(0, rows, BATCH):
        t = clock()
        index = order[i : i + BATCH]
        xb, yb = x[index], y[index]
        t1 = clock()
        rest["batch gathering (x[index], y[index])"] += t1 - t
        optimizer.zero_grad(set_to_none=True)
        t = clock()
        rest["zero_grad"] += t - t1
        inputs, outputs, h = [], [], xb
        for k, layer in enumerate(layers):
            if k > 0:
                h = h.detach().requires_grad_()
            inputs.append(h)
            t = clock()
            h = layer(h)
            forward[k] += clock() - t
            outputs.append(h)
        logits = h.detach().requires_grad_()
        t = clock()
        loss = F.cross_entropy(logits, yb)
        t1 = clock()
        loss.backward()
        t2 = clock()
        rest["loss forward (cross-entropy)"] += t1 - t
        rest["loss backward"] += t2 - t1
        grad = logits.grad
        for k in reversed(range(len(layers))):
            t = clock()
            outputs[k].backward(grad)
            backward[k] += clock() - t
            grad = inputs[k].grad
        t = clock()
        optimizer.step()
        rest["optimizer step"] += clock() - t
    return forward, backward, rest


def breakdown(tensors, threads: int, seed: int, quiet_wait: float) -> None:
    """PyTorch only: an epoch as train_epoch runs it (reference), then one timed layer by layer."""
    x_train, y_train, x_test, y_test = tensors
    model, optimizer, generator = new_run(seed)
    wait_for_quiet(quiet_wait)
    with OthersLoad() as load:
        start = time.perf_counter()
        train_epoch(model, optimizer, x_train, y_train, generator)
        plain = time.perf_counter() - start
    log(f"epoch 1 (plain training loop): {plain:.2f} s (other processes kept {load.fraction:.0%} of the CPUs "
        "busy); timing epoch 2 layer by layer")
    wait_for_quiet(quiet_wait)
    with OthersLoad() as load:
        start = time.perf_counter()
        forward, backward, rest = timed_epoch(model, optimizer, x_train, y_train, generator)
        timed = time.perf_counter() - start
    log(f"epoch 2 (layer by layer): {timed:.2f} s (other processes kept {load.fraction:.0%} of the CPUs busy); "
        f"test accuracy {100 * test_accuracy(model, x_test, y_test):.2f}%")

    steps = -(-x_train.shape[0] // BATCH)
    labels = [layer_label(m) for m in model]
    by_type: dict[str, list[float]] = {}
    for (kind, _), f, b in zip(labels, forward, backward):
        by_type.setdefault(kind, [0.0, 0.0])
        by_type[kind][0] += f
        by_type[kind][1] += b

    def row(name: str, f: float | None, b: float | None, total: float) -> str:
        cells = " | ".join("" if v is None else f"{v:.3f}" for v in (f, b))
        return f"| {name} | {cells} | {total:.3f} | {1e6 * total / steps:.0f} | {100 * total / timed:.1f}% |"

    header = ("| {} | forward (s) | backward (s) | total (s) | per step (us) | share of the timed epoch |\n"
              "|---|---|---|---|---|---|")
    print(f"### PyTorch LeNet-5: time per module type over one epoch "
          f"(Fashion-MNIST, batch {BATCH}, {steps} steps)\n")
    print(f"{machine_line(threads, None)}. A plain training epoch took {plain:.2f} s; the epoch timed layer "
          f"by layer {timed:.2f} s (it runs the backward pass one layer at a time).\n")
    print(header.format("module type"))
    order = ["conv", "pool", "relu", "linear", "flatten"]
    for kind in order + sorted(set(by_type) - set(order)):
        if kind in by_type:
            print(row(kind, *by_type[kind], sum(by_type[kind])))
    f, b = rest["loss forward (cross-entropy)"], rest["loss backward"]
    print(row("loss (cross-entropy)", f, b, f + b))
    for name in ["optimizer step", "zero_grad", "batch gathering (x[index], y[index])", "shuffle"]:
        print(row(name, None, None, rest[name]))
    other = timed - sum(forward) - sum(backward) - sum(rest.values())
    print(row("rest (python loop, detaching)", None, None, other))
    print("\nPer layer:\n")
    print(header.format("layer"))
    for k, ((_, description), f, b) in enumerate(zip(labels, forward, backward)):
        print(row(f"{k + 1}. {description}", f, b, f + b))
    print(f"\nForward {sum(forward) + rest['loss forward (cross-entropy)']:.3f} s, backward "
          f"{sum(backward) + rest['loss backward']:.3f} s, optimizer step {rest['optimizer step']:.3f} s.")


# --- main ------------------------------------------------------------------------------------

def fmt_acc(values: list[float]) -> str:
    return f"{100 * statistics.median(values):.2f}%" if values else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of gradus then PyTorch (medians are taken)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per run")
    parser.add_argument("--threads", type=int, default=2, help="threads for PyTorch (set_num_threads) and gradus")
    parser.add_argument("--seed", type=int, default=0, help="seed of round 1; round r uses seed + r - 1")
    parser.add_argument("--build", action="store_true", help="cargo build --release -p gradus-cli first")
    parser.add_argument("--gradus", type=Path, default=GRADUS, help="the gradus binary [target/release/gradus]")
    parser.add_argument("--breakdown", action="store_true",
                        help="PyTorch only: forward/backward time per module type over one epoch")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="seconds to wait for other processes to leave the CPUs idle before each run "
                        "(default 60)")
    parser.add_argument("--no-venv", action="store_true", help="use this interpreter's torch, not bench/.venv")
    args = parser.parse_args()
    if not args.no_venv:
        ensure_venv()
    import torch

    torch.set_num_threads(args.threads)
    binary = args.gradus.resolve()
    log(f"loading Fashion-MNIST from {data_dir()}")
    tensors = tuple(torch.from_numpy(a) for a in load_fashion_mnist())
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {usable_cpus()} usable CPUs; "
        f"{tensors[0].shape[0]} training and {tensors[2].shape[0]} test images")
    if args.breakdown:
        warm_up_torch(tensors)
        breakdown(tensors, args.threads, args.seed, args.quiet_wait)
        return

    use_gradus = build_gradus() if args.build else True
    warm_up_torch(tensors)
    results: dict[str, list[dict]] = {"gradus": [], "torch": []}
    for r in range(args.rounds):
        seed = args.seed + r
        log(f"round {r + 1} of {args.rounds} (seed {seed})")
        if use_gradus:
            wait_for_quiet(args.quiet_wait)
            g = run_gradus(binary, args.epochs, args.threads, seed)
            if g is None:
                use_gradus = False  # a failing binary fails the same way in every round
            else:
                results["gradus"].append(g)
        wait_for_quiet(args.quiet_wait)
        results["torch"].append(run_torch(tensors, args.epochs, seed))

    epoch_times = {k: [s for run in v for s in run["epoch_seconds"]] for k, v in results.items()}
    final_acc = {k: [run["accuracy"][-1] for run in v] for k, v in results.items()}
    median_time = {k: statistics.median(v) if v else None for k, v in epoch_times.items()}
    others = {k: [f for run in v for f in run["others"]] for k, v in results.items()}

    print(f"### LeNet-5 on Fashion-MNIST: gradus against PyTorch ({args.threads} threads)\n")
    print(f"{machine_line(args.threads, binary)}.\n")
    print(f"60,000 training images (pixels / 255), SGD lr {LR} momentum {MOMENTUM}, batch {BATCH}, "
          f"{args.epochs} epochs; {args.rounds} round{'s' if args.rounds != 1 else ''} (gradus, then PyTorch); "
          "epoch times are medians over all epochs of all rounds, test accuracy (10,000 images) the median "
          "over rounds of the final accuracy. gradus' epoch times are the ones `gradus train --metrics-json` "
          "reports; PyTorch's time its training loop over preloaded tensors.\n")
    print("| | epoch (s), median | epoch (s), min | test accuracy | `gradus train` wall (s), median | "
          "CPUs used by other processes, median |")
    print("|---|---|---|---|---|---|")
    for k, label in (("gradus", "gradus"), ("torch", "PyTorch")):
        times = epoch_times[k]
        if not times:
            print(f"| {label} | n/a | n/a | n/a | n/a | n/a |")
            continue
        wall = f"{statistics.median(run['wall'] for run in results[k]):.2f}" if k == "gradus" else ""
        print(f"| {label} | {median_time[k]:.2f} | {min(times):.2f} | {fmt_acc(final_acc[k])} | {wall} | "
              f"{statistics.median(others[k]):.0%} |")
    print()
    print("| check | value | target | result |")
    print("|---|---|---|---|")
    if median_time["gradus"] is not None:
        ratio = median_time["gradus"] / median_time["torch"]
        gap = 100 * (statistics.median(final_acc["gradus"]) - statistics.median(final_acc["torch"]))
        print(f"| epoch time gradus / PyTorch | {ratio:.2f} | <= {TARGET_RATIO} | "
              f"{'met' if ratio <= TARGET_RATIO else 'missed'} |")
        print(f"| test accuracy gradus - PyTorch (points) | {gap:+.2f} | >= -{TARGET_ACCURACY_POINTS} | "
              f"{'met' if gap >= -TARGET_ACCURACY_POINTS else 'missed'} |")
    else:
        print("| epoch time gradus / PyTorch | n/a (gradus did not run) | <= 0.7 | |")
        print("| test accuracy gradus - PyTorch (points) | n/a (gradus did not run) | >= -0.5 | |")
    busiest = max((f for v in others.values() for f in v), default=0.0)
    if busiest > QUIET:
        print(f"\nOther processes used up to {busiest:.0%} of the CPUs during some measurements (see the last column "
              "below): those times are not representative (PyTorch's OpenMP threads slow down many times over "
              "when they share the CPUs).")
    print()
    print("Per round, seconds of each epoch (test accuracy after it):\n")
    epochs_header = " | ".join(f"epoch {e + 1}" for e in range(args.epochs))
    print(f"| round | side | {epochs_header} | final test accuracy | CPUs used by other processes |")
    print("|---|---|" + "---|" * args.epochs + "---|---|")
    for k, label in (("gradus", "gradus"), ("torch", "PyTorch")):
        for r, run in enumerate(results[k]):
            cells = []
            for e in range(args.epochs):
                if e >= len(run["epoch_seconds"]):
                    cells.append("")
                elif k == "torch":
                    cells.append(f"{run['epoch_seconds'][e]:.2f} ({100 * run['accuracy'][e]:.2f}%)")
                else:
                    cells.append(f"{run['epoch_seconds'][e]:.2f}")
            load = ", ".join(f"{f:.0%}" for f in run["others"])
            accuracy = f"{100 * run['accuracy'][-1]:.2f}%"
            print(f"| {r + 1} | {label} | " + " | ".join(cells) + f" | {accuracy} | {load} |")


if __name__ == "__main__":
    main()
