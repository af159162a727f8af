#!/usr/bin/env python3
"""Matrix factorization: the cost of an epoch through `gradus train` against the library's own loop.

Runs, alternately and `--rounds` times each, on the same MovieLens ratings and settings (100
factors, 20 epochs, lr 0.005, reg 0.02, seed 0, sequential Funk-SVD SGD):

- the library: `examples/mf_movielens.rs` training `MatrixFactorization::fit` on every rating but
  one (a folds file with one held-out rating), timing `fit` alone;
- the command line: `gradus train --dataset movielens_small --val-fraction 0 --metrics-json F`,
  timing the 20 epochs as the command reports them in its history (reading the file and
  start-up are not epochs).

`--epochs` changes the 20; runs of 20 and of 100 epochs tell the cost of one more epoch apart
from the costs of starting. Prints the per-round times and the ratio of the medians (command line / library). Build first:

    cargo build --release -p gradus-cli && cargo build --release -p gradus --example mf_movielens
    python3 bench/mf_cli_vs_library.py [--rounds 7] [--threads 2]
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATINGS = os.path.join(ROOT, "data", "movielens_small_ratings.csv")
GRADUS = os.path.join(ROOT, "target", "release", "gradus")
EXAMPLE = os.path.join(ROOT, "target", "release", "examples", "mf_movielens")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    with open(RATINGS) as f:
        n = sum(1 for line in f if line.strip()) - 1
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    library, cli = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folds = os.path.join(tmp, "folds.txt")
        with open(folds, "w") as f:
            f.write("1\n" + "0\n" * (n - 1))  # fold 1 trains on all ratings but the first
        metrics = os.path.join(tmp, "m.json")
        for _ in range(args.rounds):
            out = subprocess.run([EXAMPLE, "--ratings", RATINGS, "--folds", folds, "--epochs", str(args.epochs)],
                                 env=env,
                                 capture_output=True, text=True, check=True).stdout
            library.append(json.loads(out)["folds"][1]["fit_seconds"])
            subprocess.run([GRADUS, "train", "--dataset", "movielens_small", "--val-fraction", "0",
                            "--epochs", str(args.epochs), "--threads", str(args.threads), "--metrics-json", metrics, "--quiet"],
                           check=True, cwd=tmp)
            with open(metrics) as f:
                cli.append(json.load(f)["history"][-1]["seconds"])
    for name, times in ((f"library fit ({args.epochs} epochs)", library),
                        (f"gradus train ({args.epochs} epochs)", cli)):
        print(f"{name:26s} median {statistics.median(times):.4f} s  runs " +
              " ".join(f"{t:.4f}" for t in times))
    print(f"ratio command line / library: {statistics.median(cli) / statistics.median(library):.3f}")


if __name__ == "__main__":
    main()
