#!/usr/bin/env python3
"""Sentiment classification on the women's clothing reviews: `gradus train` against fastText and
scikit-learn, on the very same split, in one run.

    python3 bench/text_vs_fasttext.py                     # both targets, 3 rounds
    python3 bench/text_vs_fasttext.py --target recommended --rounds 5
    python3 bench/text_vs_fasttext.py --epochs 10         # the same epochs on the gradus and fastText sides

Data: data/womens_clothing_reviews.csv.gz (the built-in `reviews`). Rows with a review text are
kept; the text of a row is its title and its review text, joined by a space. The split is an
80/20 stratified split with seed 0 (scikit-learn's `train_test_split(..., stratify=y,
random_state=0)`), written to two CSV files that every side reads:

  * gradus, as a user runs it, in a subprocess: `gradus train --data train.csv --text
    title,review_text --target T --val-fraction 0 --epochs E --save MODEL --metrics-json M`, then
    `gradus evaluate MODEL --data test.csv --json`. The training time is the one gradus reports
    (the last `seconds` of the --metrics-json history: tokenizing and reading the file are not
    counted, as they are not for fastText below); the command's wall time is shown too.
  * fastText (the `fasttext-wheel` package): `train_supervised` on `__label__y text` lines with
    word bigrams (`wordNgrams=2`), the same number of epochs, lr 0.5, dim 50 (its tutorial's
    settings for sentiment), on the threads given; tokens as fastText splits them (whitespace)
    after lowercasing and spacing out punctuation, as its tutorial prepares text.
  * scikit-learn: TF-IDF of words and bigrams (sublinear tf, min_df 2), then `SGDClassifier(
    loss="log_loss")` and `LogisticRegression(C=10)`; the time is vectorizing plus fitting.

Targets (issue 10): `recommended` at least 91.7 % test accuracy and training no slower than
fastText with the same epochs; `rating` (5 classes) at least 66 %.

On first use it creates bench/.venv-text with fasttext-wheel, scikit-learn and numpy < 2.
"""

import argparse
import csv
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-text"
VENV_PYTHON = VENV / "bin" / "python"
DATA = ROOT / "data" / "womens_clothing_reviews.csv.gz"
GRADUS = ROOT / "target" / "release" / "gradus"
TARGETS = {"recommended": 0.917, "rating": 0.66}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_venv() -> None:
    """Creates bench/.venv-text when missing and re-executes this script inside it."""
    if not VENV_PYTHON.exists():
        log(f"creating {VENV}")
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    check = subprocess.run([str(VENV_PYTHON), "-c", "import fasttext, sklearn, numpy; assert numpy.__version__ < '2'"],
                           capture_output=True)
    if check.returncode != 0:
        log("installing fasttext-wheel, scikit-learn and numpy")
        # fasttext-wheel's predict asks NumPy for `copy=False` arrays, which NumPy 2 refuses.
        subprocess.check_call([str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "fasttext-wheel", "scikit-learn",
                               "numpy<2"])
    if Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])


def load_rows():
    """The reviews with a review text: (title, review_text, recommended, rating) each."""
    with gzip.open(DATA, "rt", encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["review_text"].strip()]
    return rows


def split(rows, target):
    from sklearn.model_selection import train_test_split

    labels = [r[target] for r in rows]
    train, test = train_test_split(rows, test_size=0.2, stratify=labels, random_state=0)
    return train, test


def write_csv(path, rows, target):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["title", "review_text", target])
        for r in rows:
            w.writerow([r["title"], r["review_text"], r[target]])


def fasttext_text(r):
    text = f'{r["title"]} {r["review_text"]}'.lower().replace("\n", " ")
    return re.sub(r"([.!?,'/()\"])", r" \1 ", text)


def run_gradus(tmp, target, epochs, threads):
    model, metrics = tmp / f"{target}.json", tmp / f"{target}.metrics.json"
    command = [str(GRADUS), "train", "--data", str(tmp / "train.csv"), "--text", "title,review_text", "--target",
               target, "--val-fraction", "0", "--threads", str(threads), "--save", str(model), "--metrics-json",
               str(metrics), "--quiet"]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    with open(metrics) as f:
        history = json.load(f)["history"]
    out = subprocess.run([str(GRADUS), "evaluate", str(model), "--data", str(tmp / "test.csv"), "--json", "--quiet"],
                         check=True, capture_output=True, text=True).stdout
    accuracy = json.loads(out)["metrics"]["accuracy"]
    return history[-1]["seconds"], wall, accuracy, len(history)


def run_fasttext(tmp, train, test, target, epochs, threads):
    import fasttext

    path = tmp / f"{target}.fasttext.txt"
    with open(path, "w", encoding="utf-8") as f:
        for r in train:
            f.write(f"__label__{r[target]} {fasttext_text(r)}\n")
    start = time.perf_counter()
    model = fasttext.train_supervised(str(path), epoch=epochs, lr=0.5, wordNgrams=2, dim=50, thread=threads,
                                      verbose=0)
    seconds = time.perf_counter() - start
    predicted = [model.predict(fasttext_text(r))[0][0].removeprefix("__label__") for r in test]
    accuracy = sum(p == r[target] for p, r in zip(predicted, test)) / len(test)
    return seconds, accuracy


def run_sklearn(train, test, target):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    text = lambda rows: [f'{r["title"]} {r["review_text"]}' for r in rows]
    y_train, y_test = [r[target] for r in train], [r[target] for r in test]
    results = {}
    for name, classifier in (("TF-IDF + SGDClassifier(log_loss)", SGDClassifier(loss="log_loss", alpha=1e-5,
                                                                               random_state=0)),
                             ("TF-IDF + LogisticRegression(C=10)", LogisticRegression(C=10, max_iter=2000))):
        start = time.perf_counter()
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        x_train = vectorizer.fit_transform(text(train))
        classifier.fit(x_train, y_train)
        seconds = time.perf_counter() - start
        accuracy = (classifier.predict(vectorizer.transform(text(test))) == y_test).mean()
        results[name] = (seconds, float(accuracy))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", choices=sorted(TARGETS), action="append", help="target(s) [both]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side (medians are taken)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of gradus and fastText [gradus' default, which fastText then uses too]")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-venv", action="store_true", help="use this interpreter's packages")
    args = parser.parse_args()
    if not args.no_venv:
        ensure_venv()
    rows = load_rows()
    for target in args.target or ["recommended", "rating"]:
        train, test = split(rows, target)
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            write_csv(tmp / "train.csv", train, target)
            write_csv(tmp / "test.csv", test, target)
            gradus, fast = [], []
            for round_ in range(args.rounds):
                seconds, wall, accuracy, epochs = run_gradus(tmp, target, args.epochs, args.threads)
                gradus.append((seconds, wall, accuracy))
                log(f"  {target} round {round_ + 1}: gradus {seconds:.2f} s ({epochs} epochs), {accuracy:.2%}")
                fast_seconds, fast_accuracy = run_fasttext(tmp, train, test, target, epochs, args.threads)
                fast.append((fast_seconds, fast_accuracy))
                log(f"  {target} round {round_ + 1}: fastText {fast_seconds:.2f} s, {fast_accuracy:.2%}")
            sk = run_sklearn(train, test, target)
        median = lambda values: statistics.median(values)
        g_time, g_wall, g_acc = (median([g[k] for g in gradus]) for k in range(3))
        f_time, f_acc = (median([f[k] for f in fast]) for k in range(2))
        print(f"\n### `{target}` from title + review text ({len(train)} training, {len(test)} test reviews; "
              f"{epochs} epochs; {args.threads} threads; medians of {args.rounds} rounds)\n")
        print("| | training time (s) | test accuracy |")
        print("|---|---|---|")
        print(f"| gradus (`gradus train`; the command's wall time {g_wall:.2f} s) | {g_time:.2f} | {g_acc:.2%} |")
        print(f"| fastText (wordNgrams 2, dim 50, lr 0.5) | {f_time:.2f} | {f_acc:.2%} |")
        for name, (seconds, accuracy) in sk.items():
            print(f"| scikit-learn {name} | {seconds:.2f} | {accuracy:.2%} |")
        goal = TARGETS[target]
        print(f"\ntest accuracy target >= {goal:.1%}: {'met' if g_acc >= goal else 'NOT met'}; "
              f"training time gradus / fastText: {g_time / f_time:.2f} (target <= 1: "
              f"{'met' if g_time <= f_time else 'NOT met'})")


if __name__ == "__main__":
    main()
