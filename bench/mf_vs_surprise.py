#!/usr/bin/env python3
"""gradus's matrix factorization against scikit-surprise's SVD: 5-fold cross-validation on MovieLens.

Both libraries train the same model (biased SVD: 100 factors, 20 epochs, factors drawn from
N(0, 0.1), lr and reg surprise's defaults 0.005 and 0.02 unless --lr / --reg set them for both) on
the very same folds: this script deals the rows of the ratings
file into folds from a seed, writes one fold id per row to bench/out/mf_folds.txt, runs the Rust
example `mf_movielens` on that file with both gradus trainers (the sequential `sgd`, gradus's
default, and the stratified parallel `dsgd`) and surprise's SVD on the same splits, and prints
per-fold fit time and held-out RMSE for all three and the speed ratios. Fit time is training only
(surprise's `fit`, gradus's `MatrixFactorization::fit`); loading and splitting the data is not
timed. Both the CPU time of the whole process (every thread) and the wall clock are shown: on a
shared machine the CPU time is the steadier of the two; for the parallel trainer the wall clock is
the one that shows what the threads buy.

surprise runs in its own virtual environment, bench/.venv-surprise, which this script creates on
first use (scikit-surprise needs numpy < 2 and a C compiler) and then re-runs itself in.

    python3 bench/mf_vs_surprise.py [--ratings FILE] [--folds 5] [--seed 0] [--lr 0.005] [--reg 0.02]
        [--threads N] [--json OUT.json]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / "bench" / ".venv-surprise"
VENV_PYTHON = VENV / "bin" / "python"
DEFAULT_RATINGS = REPO / "data" / "movielens_small_ratings.csv"
FALLBACK_RATINGS = Path("/work/shared/datasets/movielens_small_ratings.csv")
OUT = REPO / "bench" / "out"

# surprise's SVD defaults, spelled out so both sides visibly train the same model; --lr and --reg
# replace the last two for both.
N_FACTORS, N_EPOCHS, LR_ALL, REG_ALL = 100, 20, 0.005, 0.02
TRAINERS = ["sgd", "dsgd"]


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv() -> None:
    """Creates bench/.venv-surprise with scikit-surprise unless it already imports there."""
    if VENV_PYTHON.exists():
        check = subprocess.run([str(VENV_PYTHON), "-c", "import surprise"], capture_output=True)
        if check.returncode == 0:
            return
    print(f"creating {VENV.relative_to(REPO)} with scikit-surprise (once; builds a C extension)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV_PYTHON), "-m", "pip", "install", "-q"]
    # surprise's extension is compiled against numpy's C API and wants numpy < 2; installing
    # numpy and Cython first and building without isolation makes the build use exactly them.
    subprocess.run(pip + ["numpy<2", "cython"], check=True)
    subprocess.run(pip + ["--no-build-isolation", "scikit-surprise"], check=True)


def default_ratings() -> Path:
    return DEFAULT_RATINGS if DEFAULT_RATINGS.exists() else FALLBACK_RATINGS


def make_folds(n_rows: int, n_folds: int, seed: int) -> list:
    """Fold of each row: a seeded permutation of the rows dealt round-robin into the folds."""
    import numpy as np

    order = np.random.RandomState(seed).permutation(n_rows)
    folds = np.empty(n_rows, dtype=np.int64)
    folds[order] = np.arange(n_rows) % n_folds
    return folds.tolist()


def run_gradus(ratings: Path, folds_file: Path, seed: int, lr: float, reg: float, trainer: str, threads) -> dict:
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "gradus", "--example", "mf_movielens"], cwd=REPO, check=True
    )
    binary = REPO / "target" / "release" / "examples" / "mf_movielens"
    args = [str(binary), "--ratings", str(ratings), "--folds", str(folds_file), "--seed", str(seed)]
    args += ["--factors", str(N_FACTORS), "--epochs", str(N_EPOCHS), "--lr", str(lr), "--reg", str(reg)]
    args += ["--trainer", trainer]
    env = dict(os.environ)
    if threads:
        env["RAYON_NUM_THREADS"] = str(threads)
    result = subprocess.run(args, cwd=REPO, check=True, capture_output=True, text=True, env=env)
    return json.loads(result.stdout)


def run_surprise(ratings: Path, folds: list, seed: int, lr: float, reg: float) -> list:
    from surprise import SVD, Dataset, Reader, accuracy

    reader = Reader(line_format="user item rating timestamp", sep=",", skip_lines=1, rating_scale=(0.5, 5.0))
    data = Dataset.load_from_file(str(ratings), reader=reader)
    rows = data.raw_ratings  # in file order, as the fold ids are
    if len(rows) != len(folds):
        sys.exit(f"surprise read {len(rows)} ratings, the folds cover {len(folds)}")
    results = []
    for fold in range(max(folds) + 1):
        train = [row for row, f in zip(rows, folds) if f != fold]
        test = [row for row, f in zip(rows, folds) if f == fold]
        trainset = data.construct_trainset(train)
        testset = data.construct_testset(test)
        algo = SVD(n_factors=N_FACTORS, n_epochs=N_EPOCHS, lr_all=lr, reg_all=reg, random_state=seed)
        start, cpu_start = time.perf_counter(), time.process_time()
        algo.fit(trainset)
        fit_seconds = time.perf_counter() - start
        fit_cpu_seconds = time.process_time() - cpu_start
        predictions = algo.test(testset)
        results.append(
            {
                "fold": fold,
                "n_train": len(train),
                "n_test": len(test),
                "fit_seconds": fit_seconds,
                "fit_cpu_seconds": fit_cpu_seconds,
                "rmse": accuracy.rmse(predictions, verbose=False),
                "mae": accuracy.mae(predictions, verbose=False),
            }
        )
        print(f"surprise fold {fold}: {fit_cpu_seconds:.3f} s CPU, RMSE {results[-1]['rmse']:.4f}", file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratings", type=Path, default=None, help="ratings CSV (userId,movieId,rating,timestamp)")
    parser.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and of both models (default 0)")
    parser.add_argument("--lr", type=float, default=LR_ALL, help=f"lr_all of both (default {LR_ALL})")
    parser.add_argument("--reg", type=float, default=REG_ALL, help=f"reg_all of both (default {REG_ALL})")
    parser.add_argument("--threads", type=int, default=None, help="RAYON_NUM_THREADS for gradus (default: all)")
    parser.add_argument("--json", type=Path, default=None, help="also write all results to this file")
    args = parser.parse_args()

    if not in_venv():
        ensure_venv()
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve())] + sys.argv[1:])

    ratings = (args.ratings or default_ratings()).resolve()
    with open(ratings) as f:
        n_rows = sum(1 for line in f if line.strip()) - 1
    folds = make_folds(n_rows, args.folds, args.seed)
    OUT.mkdir(parents=True, exist_ok=True)
    folds_file = OUT / "mf_folds.txt"
    folds_file.write_text("".join(f"{f}\n" for f in folds))

    print(f"ratings: {ratings} ({n_rows} rows), {args.folds} folds, seed {args.seed}", file=sys.stderr)
    gradus = {}
    for trainer in TRAINERS:
        gradus[trainer] = run_gradus(ratings, folds_file, args.seed, args.lr, args.reg, trainer, args.threads)
        for r in gradus[trainer]["folds"]:
            cpu, rmse = r["fit_cpu_seconds"], r["rmse"]
            print(f"gradus {trainer:<4} fold {r['fold']}: {cpu:.3f} s CPU, RMSE {rmse:.4f}", file=sys.stderr)
    surprise = run_surprise(ratings, folds, args.seed, args.lr, args.reg)

    print()
    print(f"SVD, {N_FACTORS} factors, {N_EPOCHS} epochs, lr {args.lr}, reg {args.reg}; {args.folds}-fold CV on {ratings.name}")
    print("fit time in seconds: CPU time of the process, all threads (wall clock in brackets);")
    print("speed-up = surprise's time / gradus's; sgd = gradus sequential (default), dsgd = stratified parallel")
    columns = ["fold", "sgd fit", "dsgd fit", "surprise fit", "sgd speed-up", "dsgd speed-up"]
    columns += ["sgd RMSE", "dsgd RMSE", "surprise RMSE"]
    widths = [4, 15, 15, 15, 15, 15, 8, 9, 13]
    header = " | ".join(f"{c:>{w}}" for c, w in zip(columns, widths))
    print(header)
    print("-" * len(header))

    def times(r):
        return f"{r['fit_cpu_seconds']:.3f} ({r['fit_seconds']:.3f})"

    def ratio(g, s):
        return f"{s['fit_cpu_seconds'] / g['fit_cpu_seconds']:.1f}x ({s['fit_seconds'] / g['fit_seconds']:.1f}x)"

    def row(label, g, d, s):
        cells = [label, times(g), times(d), times(s), ratio(g, s), ratio(d, s)]
        cells += [f"{g['rmse']:.4f}", f"{d['rmse']:.4f}", f"{s['rmse']:.4f}"]
        print(" | ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))

    for g, d, s in zip(gradus["sgd"]["folds"], gradus["dsgd"]["folds"], surprise):
        row(str(g["fold"]), g, d, s)
    keys = ["fit_seconds", "fit_cpu_seconds", "rmse"]
    mean = lambda rows: {k: sum(r[k] for r in rows) / len(rows) for k in keys}  # noqa: E731
    print("-" * len(header))
    row("mean", mean(gradus["sgd"]["folds"]), mean(gradus["dsgd"]["folds"]), mean(surprise))
    for trainer in TRAINERS:
        pairs = list(zip(gradus[trainer]["folds"], surprise))
        cpu = min(s["fit_cpu_seconds"] / g["fit_cpu_seconds"] for g, s in pairs)
        wall = min(s["fit_seconds"] / g["fit_seconds"] for g, s in pairs)
        print(f"smallest per-fold speed-up of {trainer}: {cpu:.1f}x CPU time, {wall:.1f}x wall clock")
    if args.json:
        args.json.write_text(json.dumps({"gradus": gradus, "surprise": surprise}, indent=2))


if __name__ == "__main__":
    main()
