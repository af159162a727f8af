#!/usr/bin/env python3
"""MLP training speed: gradus against PyTorch on the CPU, same data, split, model and epochs.

    python3 bench/mlp_vs_torch.py              # 5 rounds
    python3 bench/mlp_vs_torch.py --rounds 9   # steadier medians on a busy machine

A 784-128-10 relu MLP trains on mnist_5k for 20 epochs of mini-batches of 64 (4,000 training rows:
rows whose index is not a multiple of 5; features standardized on them; the other 1,000 rows are
the test set), with Adam (lr 1e-3) and with SGD (lr 0.01, momentum 0.9). Each round runs gradus
(the `mlp_timing` example, one subprocess) and then PyTorch twice in this process: a plain loop
over preloaded tensors, and the same loop plus the end-of-epoch pass over the training rows that
gradus' Trainer makes (it records the epoch's training loss and accuracy); and the plain loop on
one thread (PyTorch's default is one per CPU; on a shared machine its spinning threads suffer most
from a busy neighbour, and gradus runs a 64-row batch on one thread). Only training is timed.
The table shows medians over the rounds and the ratio gradus / PyTorch (target <= 0.5).

On first use it creates bench/.venv and installs PyTorch there (the wheel alone plus its
pure-python dependencies, as bench/optimizer_step.py does; it reuses that environment), then
re-runs itself with that interpreter. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
TORCH_LIGHT_DEPS = ["filelock", "typing-extensions", "sympy", "networkx", "jinja2", "fsspec", "numpy"]
DATA = ROOT / "data" / "mnist_5k.csv.gz"
EPOCHS = 20
BATCH = 64
TARGET_RATIO = 0.5


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


def build_example(name: str) -> Path:
    subprocess.check_call(["cargo", "build", "--release", "-p", "gradus", "--example", name], cwd=ROOT)
    return ROOT / "target" / "release" / "examples" / name


def load_split():
    """mnist_5k as float32 arrays: (x_train, y_train, x_test, y_test), standardized on the training rows."""
    import numpy as np

    with gzip.open(DATA, "rt") as f:
        table = np.loadtxt(f, delimiter=",", skiprows=1, dtype=np.float64)
    x, y = table[:, :-1], table[:, -1].astype(np.int64)
    test = np.arange(len(y)) % 5 == 0
    mean = x[~test].mean(axis=0)
    std = x[~test].std(axis=0)
    std[std == 0] = 1.0  # constant columns map to 0, as gradus' Standardizer does
    x = ((x - mean) / std).astype(np.float32)
    return x[~test], y[~test], x[test], y[test]


def time_torch(data, optimizer_name: str, evaluate_each_epoch: bool, seed: int, threads: int) -> tuple[float, float]:
    """Seconds to train (tensors already in memory) with `threads` intra-op threads, and the test accuracy."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in data)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    if optimizer_name == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    rows = x_train.shape[0]
    start = time.perf_counter()
    for _ in range(EPOCHS):
        order = torch.randperm(rows, generator=generator)
        for i in range(0, rows, BATCH):
            index = order[i : i + BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
        if evaluate_each_epoch:
            with torch.no_grad():
                logits = model(x_train)
                _ = F.cross_entropy(logits, y_train).item()
                _ = (logits.argmax(dim=1) == y_train).float().mean().item()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    return seconds, accuracy


def time_gradus(binary: Path, optimizer_name: str) -> tuple[float, float]:
    out = subprocess.run([str(binary), optimizer_name, "1"], check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    return result["seconds"][0], result["test_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per optimizer (medians are taken)")
    parser.add_argument("--no-venv", action="store_true", help="use this interpreter's torch, not bench/.venv")
    args = parser.parse_args()
    if not args.no_venv:
        ensure_venv()
    import torch

    binary = build_example("mlp_timing")
    threads = torch.get_num_threads()
    data = load_split()
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {os.cpu_count()} CPUs")
    rows = []
    for optimizer_name in ["adam", "sgd"]:
        times = {"gradus": [], "torch": [], "torch+eval": [], "torch 1 thread": []}
        accuracy = {}
        time_torch(data, optimizer_name, False, 0, threads)  # warm-up: first-call allocations, thread pool
        for r in range(args.rounds):
            times["gradus"].append((t := time_gradus(binary, optimizer_name))[0])
            accuracy["gradus"] = t[1]
            times["torch"].append((t := time_torch(data, optimizer_name, False, r, threads))[0])
            accuracy["torch"] = t[1]
            times["torch+eval"].append((t := time_torch(data, optimizer_name, True, r, threads))[0])
            times["torch 1 thread"].append((t := time_torch(data, optimizer_name, False, r, 1))[0])
            log(f"{optimizer_name} round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()))
        medians = {k: statistics.median(v) for k, v in times.items()}
        rows.append((optimizer_name, medians, accuracy, times))

    print(f"MLP 784-128-10 relu, mnist_5k (4000 train rows), batch {BATCH}, {EPOCHS} epochs; "
          f"torch {torch.__version__} ({threads} threads by default); medians of {args.rounds} rounds "
          "(best-of-rounds ratio in brackets: PyTorch's spinning threads are the most hurt by a busy neighbour)\n")
    print("| optimizer | gradus (s) | torch loop (s) | torch loop + epoch eval (s) | torch loop, 1 thread (s) | "
          "gradus / torch loop (best) | gradus / torch + eval | gradus / torch 1 thread | target | test acc gradus / torch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, m, acc, times in rows:
        best = {k: min(v) for k, v in times.items()}
        ratio = m["gradus"] / m["torch"]
        ratio_best = best["gradus"] / best["torch"]
        ratio_eval = m["gradus"] / m["torch+eval"]
        label = "adam lr 1e-3" if name == "adam" else "sgd lr 0.01 momentum 0.9"
        met = "met" if max(ratio, ratio_best) <= TARGET_RATIO else "missed"
        ratio_one = m["gradus"] / m["torch 1 thread"]
        print(f"| {label} | {m['gradus']:.3f} | {m['torch']:.3f} | {m['torch+eval']:.3f} | {m['torch 1 thread']:.3f} | "
              f"{ratio:.2f} ({ratio_best:.2f}) | {ratio_eval:.2f} | {ratio_one:.2f} | <= {TARGET_RATIO} vs torch loop ({met}) | "
              f"{acc['gradus']:.3f} / {acc['torch']:.3f} |")
    print()
    for name, _, _, times in rows:
        print(f"{name} raw seconds: " + "; ".join(f"{k} {', '.join(f'{t:.3f}' for t in v)}" for k, v in times.items()))


if __name__ == "__main__":
    main()
