#!/usr/bin/env python3
"""Softmax regression speed and accuracy: gradus against scikit-learn's SGDClassifier.

    python3 bench/softmax_vs_sklearn.py              # 5 rounds
    python3 bench/softmax_vs_sklearn.py --rounds 9

Both train on the same 4,000 rows of mnist_5k (rows whose index is not a multiple of 5; features
standardized on them) for 20 epochs and are scored on the other 1,000 rows:

- gradus: softmax regression, SGD lr 0.01 momentum 0.9, mini-batches of 256, L2 1e-2 (the
  `softmax_timing` example, one subprocess per round);
- scikit-learn: `SGDClassifier(loss="log_loss", max_iter=20, tol=None)` (one-vs-rest logistic
  regressions, per-sample SGD with the "optimal" learning rate), with one job and with all CPUs.

Only training is timed. The table shows medians over the rounds and how many times faster gradus
is (target >= 20x, at a higher accuracy). On first use it creates bench/.venv-sklearn with
scikit-learn and re-runs itself there. Progress goes to stderr.
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
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-sklearn"
VENV_PYTHON = VENV / "bin" / "python"
DATA = ROOT / "data" / "mnist_5k.csv.gz"
EPOCHS = 20
TARGET_SPEEDUP = 20.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_venv() -> None:
    """Creates bench/.venv-sklearn with scikit-learn when missing and re-executes this script inside it."""
    if not VENV_PYTHON.exists():
        log(f"creating {VENV}")
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    check = subprocess.run([str(VENV_PYTHON), "-c", "import sklearn, numpy"], capture_output=True)
    if check.returncode != 0:
        log("installing scikit-learn")
        subprocess.check_call([str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "scikit-learn"])
    if Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])


def build_example(name: str) -> Path:
    subprocess.check_call(["cargo", "build", "--release", "-p", "gradus", "--example", name], cwd=ROOT)
    return ROOT / "target" / "release" / "examples" / name


def load_split():
    """mnist_5k as float arrays: (x_train, y_train, x_test, y_test), standardized on the training rows."""
    import numpy as np

    with gzip.open(DATA, "rt") as f:
        table = np.loadtxt(f, delimiter=",", skiprows=1, dtype=np.float64)
    x, y = table[:, :-1], table[:, -1].astype(np.int64)
    test = np.arange(len(y)) % 5 == 0
    mean = x[~test].mean(axis=0)
    std = x[~test].std(axis=0)
    std[std == 0] = 1.0
    # scikit-learn's SGD works in float64; converting beforehand keeps the conversion out of the timing.
    x = (x - mean) / std
    return x[~test], y[~test], x[test], y[test]


def time_sklearn(data, n_jobs, seed: int) -> tuple[float, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    x_train, y_train, x_test, y_test = data
    model = SGDClassifier(loss="log_loss", max_iter=EPOCHS, tol=None, random_state=seed, n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(x_train, y_train)
        seconds = time.perf_counter() - start
    return seconds, float((model.predict(x_test) == y_test).mean())


def time_gradus(binary: Path) -> tuple[float, float]:
    out = subprocess.run([str(binary), "1"], check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    return result["seconds"][0], result["test_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds (medians are taken)")
    parser.add_argument("--no-venv", action="store_true", help="use this interpreter's scikit-learn")
    args = parser.parse_args()
    if not args.no_venv:
        ensure_venv()
    import sklearn

    binary = build_example("softmax_timing")
    data = load_split()
    runs = {"gradus": [], "sklearn (1 job)": [], "sklearn (all CPUs)": []}
    accuracy = {}
    for r in range(args.rounds):
        for name, run in [
            ("gradus", lambda: time_gradus(binary)),
            ("sklearn (1 job)", lambda: time_sklearn(data, None, r)),
            ("sklearn (all CPUs)", lambda: time_sklearn(data, -1, r)),
        ]:
            seconds, acc = run()
            runs[name].append(seconds)
            accuracy[name] = acc
        log(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in runs.items()))
    medians = {k: statistics.median(v) for k, v in runs.items()}

    print(f"Softmax regression on mnist_5k (4000 train / 1000 test rows), {EPOCHS} epochs; scikit-learn "
          f"{sklearn.__version__}, {os.cpu_count()} CPUs; medians of {args.rounds} rounds\n")
    print("| library | train time (s) | test accuracy | gradus speed-up | target |")
    print("|---|---|---|---|---|")
    for name, seconds in medians.items():
        if name == "gradus":
            print(f"| gradus (SGD lr 0.01 momentum 0.9, batch 256, l2 1e-2) | {seconds:.3f} | {accuracy[name]:.3f} | | |")
            continue
        speedup = seconds / medians["gradus"]
        met = speedup >= TARGET_SPEEDUP and accuracy["gradus"] > accuracy[name]
        print(f"| {name}: SGDClassifier(log_loss) | {seconds:.3f} | {accuracy[name]:.3f} | {speedup:.1f}x | "
              f">= {TARGET_SPEEDUP:.0f}x at higher accuracy ({'met' if met else 'missed'}) |")
    print()
    print("raw seconds: " + "; ".join(f"{k} {', '.join(f'{t:.3f}' for t in v)}" for k, v in runs.items()))


if __name__ == "__main__":
    main()
