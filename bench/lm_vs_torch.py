#!/usr/bin/env python3
"""Word-level LSTM language model: `gradus train --task language_model` against the same model in
PyTorch on the CPU, on the women's clothing reviews, in one run.

    python3 bench/lm_vs_torch.py                     # 1 round, 2 epochs, 2 threads
    python3 bench/lm_vs_torch.py --quick             # smoke test: 1 epoch on 20% of the training lines
    python3 bench/lm_vs_torch.py --rounds 3          # steadier medians (an epoch takes minutes)
    python3 bench/lm_vs_torch.py --torch-only        # PyTorch alone (no gradus binary needed)
    python3 bench/lm_vs_torch.py --threads 1 --hidden 650 --embedding-dim 650

The target (the project's issue): with the defaults below, a gradus training epoch takes at most
0.7 x PyTorch's, and gradus' test perplexity is at most PyTorch's.

Data: data/womens_clothing_reviews.csv.gz (the built-in `reviews`; $GRADUS_DATA_DIR or
../shared/datasets/ are tried too). Rows with a non-empty `review_text` are kept, as
bench/text_vs_fasttext.py keeps them, and split 80/20, stratified on `recommended`. bench/.venv has
no scikit-learn, so the split is this script's own and deterministic: for each value of
`recommended` (in sorted order) its rows are shuffled by Python's random.Random(0) and the first
round(0.2 x count) go to the test set; both sets keep the file's order. (It is not scikit-learn's
train_test_split, so the lines differ from the classifier bench's split; the proportions are the
same.)

Tokens (the same on both sides): the review text lowercased, then the regex `\\w+|[^\\w\\s]` (words
and single punctuation characters); a word of it is further cut around characters that Python
counts as alphanumeric but that are neither letters nor decimal digits nor `_` (such as `¼`),
since Unicode word segmentation, which gradus uses, separates them ("ã¼ber" -> "ã ¼ ber", the only
such word in this data). train.txt and test.txt (in a temporary folder) hold one review per line,
its tokens joined by single spaces; gradus re-tokenizes each line on Unicode word boundaries,
lowercased, punctuation kept, which leaves these tokens as they are. The script checks that:
gradus' vocabulary (its size in --metrics-json `vocabulary_words`, and its words in the saved
model when found there), its count of training tokens (`train_tokens`) and `gradus evaluate`'s
counts of test tokens and of predicted tokens (`tokens`, `predicted_tokens`) must equal the ones
computed here, or the run stops with an error.

Corpus -> ids as gradus makes them: each non-empty line's tokens, then `<eos>`, all lines in file
order. The vocabulary comes from train.txt alone: the --max-vocab (10,000) most frequent tokens,
ties by first appearance, get ids 2, 3, ... by decreasing count; id 0 is `<unk>` (every other
token) and id 1 `<eos>`, so V = 10,002. Batchify: B streams of n // B tokens each (the rest
dropped), each cut into (n // B - 1) // T full chunks of T inputs and their T next tokens; a
mini-batch is chunk k of every stream, k = 0, 1, ... in order; the hidden state is carried from
one chunk to the next (detached) and is zero at the start of each epoch. The test set is batchified
the same way (same B and T, state carried) and its perplexity is exp(mean cross entropy over every
predicted token of every full chunk); next-word accuracy is the share of those tokens whose
argmax is the target.

  * PyTorch, in this process: nn.Embedding(V, E) -> nn.LSTM(E, H, 1 layer, batch_first) ->
    nn.Linear(H, V) with PyTorch's default initializations (torch.manual_seed(seed)), mean cross
    entropy over the B x T tokens, clip_grad_norm_(clip) then Adam(lr) at each step, float32,
    torch.set_num_threads(--threads). Only the training loop over tensors already in memory is
    timed, epoch by epoch; the test set is evaluated after training, untimed.
  * gradus as a user runs it, in a subprocess with --threads N and RAYON_NUM_THREADS=N:
    `gradus train --data train.txt --task language_model --val-fraction 0 --epochs EP
    --batch-size B --bptt T --embedding-dim E --hidden H --cell lstm --max-vocab 10000 --optimizer
    adam --lr LR --clip-norm CLIP --seed S --threads N --save model.json --metrics-json m.json
    --quiet`, then `gradus evaluate model.json --data test.txt --json --quiet`. Its epoch times are
    the ones --metrics-json reports (the `seconds` of its `history` records, which are taken as
    times since training started when they grow and the last equals the total `seconds`, as per
    epoch otherwise); the wall time of the whole `gradus train` command is shown too.

Defaults: E = H = 200, B = 32, T = 35, 2 epochs, Adam lr 0.002, clip 0.25, 2 threads, seed 0
(round r uses seed + r - 1). The table (Markdown, stdout) shows medians over rounds (epoch times:
over all epochs of all rounds); progress goes to stderr. Before each run the script waits (up to
--quiet-wait seconds) for other processes to leave the CPUs idle, and logs how busy they kept them.

On first use it creates bench/.venv and installs PyTorch there (as bench/cnn_vs_torch.py does; it
reuses that environment), then re-runs itself with that interpreter.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import os
import random
import re
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
DATA_FILE = "womens_clothing_reviews.csv.gz"
GRADUS = ROOT / "target" / "release" / "gradus"
TARGET_RATIO = 0.7
TARGET_PERPLEXITY_RATIO = 1.0
QUIET = 0.15  # the CPUs count as idle when other processes use at most this fraction of them
UNK, EOS = "<unk>", "<eos>"
TOKEN = re.compile(r"\w+|[^\w\s]")


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

def data_path() -> Path:
    candidates = []
    if os.environ.get("GRADUS_DATA_DIR"):
        candidates.append(Path(os.environ["GRADUS_DATA_DIR"]) / DATA_FILE)
    candidates += [ROOT / "data" / DATA_FILE, ROOT.parent / "shared" / "datasets" / DATA_FILE]
    for path in candidates:
        if path.exists():
            return path
    sys.exit(f"{DATA_FILE} not found in any of: {', '.join(str(p.parent) for p in candidates)}")


def load_rows(path: Path) -> list[dict]:
    """The reviews with a review text (as bench/text_vs_fasttext.py keeps them)."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return [r for r in csv.DictReader(f) if r["review_text"].strip()]


def stratified_split(rows: list[dict], key: str, test_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """80/20 split stratified on `key`, deterministic; both parts keep the rows' order."""
    rng = random.Random(seed)
    test = set()
    for value in sorted({r[key] for r in rows}):
        members = [i for i, r in enumerate(rows) if r[key] == value]
        rng.shuffle(members)
        test.update(members[: round(test_fraction * len(members))])
    return [r for i, r in enumerate(rows) if i not in test], [r for i, r in enumerate(rows) if i in test]


def word_piece(ch: str) -> bool:
    return ch.isalpha() or ch.isdecimal() or ch == "_"


def tokenize(text: str) -> list[str]:
    """Lowercased words and single punctuation characters (see the module documentation)."""
    tokens = []
    for token in TOKEN.findall(text.lower()):
        if len(token) == 1 or all(word_piece(ch) for ch in token):
            tokens.append(token)
            continue
        run = ""
        for ch in token:  # a word with, e.g., `¼` in it: cut around that character
            if word_piece(ch):
                run += ch
            else:
                if run:
                    tokens.append(run)
                tokens.append(ch)
                run = ""
        if run:
            tokens.append(run)
    return tokens


def build_vocab(lines: list[list[str]], max_vocab: int) -> list[str]:
    """The known words, by id - 2: the most frequent, ties by first appearance."""
    counts: dict[str, list[int]] = {}
    for tokens in lines:
        for t in tokens:
            entry = counts.get(t)
            if entry is None:
                counts[t] = [1, len(counts)]
            else:
                entry[0] += 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1][0], item[1][1]))
    return [w for w, _ in ranked[:max_vocab]]


def corpus_ids(lines: list[list[str]], index: dict[str, int]):
    """Every non-empty line's token ids then <eos> (1), lines in order; unknown tokens are 0."""
    import numpy as np

    ids = []
    for tokens in lines:
        if tokens:
            ids.extend(index.get(t, 0) for t in tokens)
            ids.append(1)
    return np.asarray(ids, dtype=np.int64)


def batchify(ids, streams: int, bptt: int):
    """(inputs, targets): chunks x streams x bptt each, as gradus cuts a corpus."""
    per_stream = len(ids) // streams
    chunks = (per_stream - 1) // bptt
    data = ids[: streams * per_stream].reshape(streams, per_stream)
    inputs = [data[:, k * bptt : k * bptt + bptt] for k in range(chunks)]
    targets = [data[:, k * bptt + 1 : k * bptt + bptt + 1] for k in range(chunks)]
    import numpy as np

    shape = (0, streams, bptt)
    return (np.ascontiguousarray(np.stack(inputs)) if inputs else np.zeros(shape, dtype=np.int64),
            np.ascontiguousarray(np.stack(targets)) if targets else np.zeros(shape, dtype=np.int64))


def prepare(args, tmp: Path) -> dict:
    path = data_path()
    rows = load_rows(path)
    train, test = stratified_split(rows, "recommended", 0.2, 0)
    if args.quick:
        train = train[: len(train) // 5]
    train_lines = [tokenize(r["review_text"]) for r in train]
    test_lines = [tokenize(r["review_text"]) for r in test]
    for name, lines in (("train.txt", train_lines), ("test.txt", test_lines)):
        with open(tmp / name, "w", encoding="utf-8", newline="\n") as f:
            for tokens in lines:
                f.write(" ".join(tokens) + "\n")
    words = build_vocab(train_lines, args.max_vocab)
    index = {w: i + 2 for i, w in enumerate(words)}
    train_ids, test_ids = corpus_ids(train_lines, index), corpus_ids(test_lines, index)
    distinct = len({t for tokens in train_lines for t in tokens})
    log(f"{path}: {len(rows)} reviews with a text; {len(train)} training lines "
        f"({len(train_ids)} tokens with <eos>, {distinct} distinct), {len(test)} test lines ({len(test_ids)} "
        f"tokens); vocabulary {len(words)} words + <unk> + <eos>; unknown: "
        f"{(train_ids == 0).mean():.2%} of training, {(test_ids == 0).mean():.2%} of test tokens")
    return {"words": words, "vocab": len(words) + 2, "train": batchify(train_ids, args.batch, args.bptt),
            "test": batchify(test_ids, args.batch, args.bptt), "train_lines": len(train),
            "train_tokens": len(train_ids), "test_tokens": len(test_ids)}


# --- PyTorch ---------------------------------------------------------------------------------

def new_model(vocab: int, args, seed: int):
    import torch
    import torch.nn as nn

    class WordLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, args.embedding_dim)
            self.lstm = nn.LSTM(args.embedding_dim, args.hidden, num_layers=1, batch_first=True)
            self.decoder = nn.Linear(args.hidden, vocab)

        def forward(self, x, state):
            out, state = self.lstm(self.embedding(x), state)
            return self.decoder(out), state

    torch.manual_seed(seed)
    model = WordLM()
    return model, torch.optim.Adam(model.parameters(), lr=args.lr)


def train_epoch(model, optimizer, inputs, targets, clip: float, limit: int | None = None) -> float:
    """One epoch of chunks in order, state carried (detached); the mean of the batch losses."""
    import torch
    import torch.nn.functional as F

    state, total, steps = None, 0.0, 0
    params = list(model.parameters())
    for k in range(inputs.shape[0] if limit is None else min(limit, inputs.shape[0])):
        if state is not None:
            state = tuple(s.detach() for s in state)
        optimizer.zero_grad(set_to_none=True)
        logits, state = model(inputs[k], state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets[k].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        total += loss.item()
        steps += 1
    return total / max(1, steps)


def evaluate(model, inputs, targets) -> tuple[float, float]:
    """(perplexity, next-word accuracy) over every predicted token of every chunk, state carried."""
    import torch
    import torch.nn.functional as F

    state, loss, correct, count = None, 0.0, 0, 0
    with torch.no_grad():
        for k in range(inputs.shape[0]):
            logits, state = model(inputs[k], state)
            flat, y = logits.reshape(-1, logits.shape[-1]), targets[k].reshape(-1)
            loss += F.cross_entropy(flat, y, reduction="sum").item()
            correct += (flat.argmax(dim=1) == y).sum().item()
            count += y.numel()
    if count == 0:
        return float("nan"), float("nan")
    return math.exp(loss / count), correct / count


def run_torch(data: dict, args, seed: int) -> dict:
    x, y = data["train"]
    model, optimizer = new_model(data["vocab"], args, seed)
    seconds, others = [], []
    for epoch in range(args.epochs):
        with OthersLoad() as load:
            start = time.perf_counter()
            loss = train_epoch(model, optimizer, x, y, args.clip)
            seconds.append(time.perf_counter() - start)
        others.append(load.fraction)
        log(f"  torch epoch {epoch + 1}: {seconds[-1]:.2f} s ({x.shape[0]} steps, {seconds[-1] / x.shape[0] * 1e3:.1f} "
            f"ms each), mean training loss {loss:.4f} (other processes kept {load.fraction:.0%} of the CPUs busy)")
    perplexity, accuracy = evaluate(model, *data["test"])
    log(f"  torch: test perplexity {perplexity:.2f}, next-word accuracy {accuracy:.2%}")
    return {"epoch_seconds": seconds, "perplexity": perplexity, "accuracy": accuracy, "others": others}


def warm_up_torch(data: dict, args) -> None:
    """A few untimed steps on a throwaway model: thread pool, allocator, first-call dispatch."""
    model, optimizer = new_model(data["vocab"], args, 12345)
    train_epoch(model, optimizer, *data["train"], args.clip, limit=5)


# --- gradus ----------------------------------------------------------------------------------

def tail(text: str, lines: int = 12) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def find_words(value, depth: int = 0):
    """The first list of strings under a key `words` in a saved model's JSON, or None."""
    if depth > 8:
        return None
    if isinstance(value, dict):
        words = value.get("words")
        if isinstance(words, list) and words and all(isinstance(w, str) for w in words):
            return words
        children = value.values()
    elif isinstance(value, list):
        children = value if value and isinstance(value[0], (dict, list)) else []
    else:
        return None
    for child in children:
        found = find_words(child, depth + 1)
        if found is not None:
            return found
    return None


def per_epoch_seconds(metrics: dict) -> list[float]:
    """Epoch times from --metrics-json: its history `seconds`, cumulative or per epoch."""
    history = sorted(metrics["history"], key=lambda r: r.get("epoch", 0))
    values = [float(r["seconds"]) for r in history]
    total = metrics.get("seconds")
    growing = all(b >= a for a, b in zip(values, values[1:]))
    cumulative = growing
    if total is not None and len(values) > 1:
        cumulative = growing and abs(values[-1] - float(total)) <= abs(sum(values) - float(total))
    return [b - a for a, b in zip([0.0] + values, values)] if cumulative else values


def check_vocabulary(data: dict, metrics: dict, stdout: str, model_path: Path) -> None:
    """Stops the run when gradus' vocabulary is not the one computed here."""
    ours = len(data["words"])
    reported = metrics.get("vocabulary_words")
    if reported is None:
        found = re.search(r"(\d[\d,]*)\s+(?:known\s+)?words", stdout)
        reported = int(found.group(1).replace(",", "")) if found else None
    if reported is None:
        log("  gradus: no `vocabulary_words` in --metrics-json (nor a word count on stdout); "
            "the vocabulary size is not checked")
    elif int(reported) != ours:
        sys.exit(f"TOKENIZATION MISMATCH: gradus' vocabulary has {reported} words, this script's {ours}: "
                 "the two sides do not see the same tokens")
    if metrics.get("train_tokens") is not None and int(metrics["train_tokens"]) != data["train_tokens"]:
        sys.exit(f"TOKENIZATION MISMATCH: gradus counts {metrics['train_tokens']} training tokens (with <eos>), "
                 f"this script {data['train_tokens']}")
    try:
        words = find_words(json.loads(model_path.read_text()))
    except (OSError, ValueError):
        words = None
    if words is None:
        log("  gradus: no word list found in the saved model; only the vocabulary size is checked")
        return
    words = [w for w in words if w not in (UNK, EOS)]
    if words != data["words"]:
        diff = next((i for i, (a, b) in enumerate(zip(words, data["words"])) if a != b), min(len(words), ours))
        sys.exit(f"TOKENIZATION MISMATCH: gradus' vocabulary ({len(words)} words) differs from this script's "
                 f"({ours}) first at rank {diff}: gradus {words[diff:diff + 5]}, here {data['words'][diff:diff + 5]}")
    log(f"  gradus' vocabulary equals this script's ({ours} words, same order)")


def run_gradus(binary: Path, tmp: Path, data: dict, args, seed: int) -> dict | None:
    """`gradus train` then `gradus evaluate` in subprocesses; None (and a note) when either fails."""
    if not binary.exists():
        log(f"  gradus: {binary} not found; skipping the gradus half")
        return None
    model_path, metrics_path = tmp / "model.json", tmp / "m.json"
    for p in (model_path, metrics_path):
        p.unlink(missing_ok=True)
    train = [str(binary), "train", "--data", str(tmp / "train.txt"), "--task", "language_model",
             "--val-fraction", "0", "--epochs", str(args.epochs), "--batch-size", str(args.batch),
             "--bptt", str(args.bptt), "--embedding-dim", str(args.embedding_dim), "--hidden", str(args.hidden),
             "--cell", "lstm", "--max-vocab", str(args.max_vocab), "--optimizer", "adam", "--lr", str(args.lr),
             "--clip-norm", str(args.clip), "--seed", str(seed), "--threads", str(args.threads),
             "--save", str(model_path), "--metrics-json", str(metrics_path), "--quiet"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    log("  $ " + " ".join(train))
    with OthersLoad() as load:
        start = time.perf_counter()
        done = subprocess.run(train, capture_output=True, text=True, cwd=ROOT, env=env)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        log(f"  gradus train failed (exit {done.returncode}); skipping the gradus half:\n"
            f"{tail(done.stderr + done.stdout)}")
        return None
    try:
        metrics = json.loads(metrics_path.read_text())
        seconds = per_epoch_seconds(metrics)
    except (OSError, ValueError, KeyError, TypeError) as e:
        log(f"  gradus: cannot read the epoch times from {metrics_path.name} ({e}); skipping the gradus half")
        return None
    if len(seconds) != args.epochs:
        log(f"  gradus: {len(seconds)} epoch records in --metrics-json for {args.epochs} epochs")
    check_vocabulary(data, metrics, done.stdout, model_path)
    evaluate_cmd = [str(binary), "evaluate", str(model_path), "--data", str(tmp / "test.txt"), "--json", "--quiet"]
    log("  $ " + " ".join(evaluate_cmd))
    done = subprocess.run(evaluate_cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode != 0:
        log(f"  gradus evaluate failed (exit {done.returncode}); skipping the gradus half:\n"
            f"{tail(done.stderr + done.stdout)}")
        return None
    try:
        out = json.loads(done.stdout.strip().splitlines()[-1])
        result = out["metrics"]
        perplexity, accuracy = float(result["perplexity"]), float(result["accuracy"])
    except (ValueError, KeyError, TypeError, IndexError) as e:
        log(f"  gradus evaluate: no metrics.perplexity / metrics.accuracy in its JSON ({e}):\n{tail(done.stdout)}")
        return None
    tokens, predicted = out.get("tokens"), out.get("predicted_tokens")
    expected = data["test"][1].numel() if hasattr(data["test"][1], "numel") else data["test"][1].size
    if tokens is not None and int(tokens) != data["test_tokens"]:
        sys.exit(f"TOKENIZATION MISMATCH: gradus evaluate counts {tokens} test tokens, this script {data['test_tokens']}")
    if predicted is not None and int(predicted) != expected:
        sys.exit(f"BATCHIFY MISMATCH: gradus evaluate predicts {predicted} test tokens, this script {expected}")
    if accuracy > 1.0:  # a percentage
        accuracy /= 100.0
    for epoch, s in enumerate(seconds):
        log(f"  gradus epoch {epoch + 1}: {s:.2f} s")
    log(f"  gradus: test perplexity {perplexity:.2f} (loss {float(result.get('loss', float('nan'))):.4f}), "
        f"next-word accuracy {accuracy:.2%}; `gradus train` wall time {wall:.2f} s, its total `seconds` "
        f"{metrics.get('seconds')} (other processes kept {load.fraction:.0%} of the CPUs busy)")
    return {"epoch_seconds": seconds, "perplexity": perplexity, "accuracy": accuracy, "wall": wall,
            "others": [load.fraction]}


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
    """Waits (at most `max_wait` seconds) until other processes leave the CPUs nearly idle."""
    deadline = time.monotonic() + max_wait
    busy = 0.0
    while max_wait > 0:
        busy0, wall0 = cpu_seconds()[0], time.perf_counter()
        time.sleep(0.5)
        busy = min(1.0, (cpu_seconds()[0] - busy0) / ((time.perf_counter() - wall0) * usable_cpus()))
        if busy <= threshold or time.monotonic() >= deadline:
            break
    if busy > threshold:
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


# --- main ------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of gradus then PyTorch (medians are taken)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per run")
    parser.add_argument("--threads", type=int, default=2, help="threads for PyTorch (set_num_threads) and gradus")
    parser.add_argument("--embedding-dim", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=200, help="LSTM hidden size")
    parser.add_argument("--batch", type=int, default=32, help="streams, the rows of a mini-batch")
    parser.add_argument("--bptt", type=int, default=35, help="steps of truncated backpropagation through time")
    parser.add_argument("--lr", type=float, default=0.002, help="Adam's learning rate")
    parser.add_argument("--clip", type=float, default=0.25, help="gradient norm clipping")
    parser.add_argument("--max-vocab", type=int, default=10_000, help="known words (<unk> and <eos> besides)")
    parser.add_argument("--seed", type=int, default=0, help="seed of round 1; round r uses seed + r - 1")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 epoch, the first 20%% of the training lines")
    parser.add_argument("--torch-only", action="store_true", help="skip gradus")
    parser.add_argument("--gradus", type=Path, default=GRADUS, help="the gradus binary [target/release/gradus]")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="seconds to wait for other processes to leave the CPUs idle before each run (default 60)")
    parser.add_argument("--no-venv", action="store_true", help="use this interpreter's torch, not bench/.venv")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 1
    if not args.no_venv:
        ensure_venv()
    import torch

    torch.set_num_threads(args.threads)
    binary = args.gradus.resolve()
    with tempfile.TemporaryDirectory(prefix="gradus-lm-bench-") as name:
        tmp = Path(name)
        data = prepare(args, tmp)
        data["train"] = tuple(torch.from_numpy(a) for a in data["train"])
        data["test"] = tuple(torch.from_numpy(a) for a in data["test"])
        log(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {usable_cpus()} usable CPUs; "
            f"{data['train'][0].shape[0]} training steps of {args.batch} x {args.bptt} tokens per epoch, "
            f"{data['test'][0].shape[0]} test chunks")
        warm_up_torch(data, args)
        use_gradus = not args.torch_only
        results: dict[str, list[dict]] = {"gradus": [], "torch": []}
        for r in range(args.rounds):
            seed = args.seed + r
            log(f"round {r + 1} of {args.rounds} (seed {seed})")
            if use_gradus:
                wait_for_quiet(args.quiet_wait)
                g = run_gradus(binary, tmp, data, args, seed)
                if g is None:
                    use_gradus = False  # a failing binary fails the same way in every round
                else:
                    results["gradus"].append(g)
            wait_for_quiet(args.quiet_wait)
            results["torch"].append(run_torch(data, args, seed))

    epoch_times = {k: [s for run in v for s in run["epoch_seconds"]] for k, v in results.items()}
    median = {k: statistics.median(v) if v else None for k, v in epoch_times.items()}
    perplexity = {k: statistics.median(run["perplexity"] for run in v) if v else None for k, v in results.items()}
    accuracy = {k: statistics.median(run["accuracy"] for run in v) if v else None for k, v in results.items()}
    others = {k: [f for run in v for f in run["others"]] for k, v in results.items()}

    print(f"### Word-level LSTM language model on the clothing reviews: gradus against PyTorch "
          f"({args.threads} threads{', --quick' if args.quick else ''})\n")
    print(f"{cpu_model()}, {usable_cpus()} usable CPUs ({os.cpu_count()} online); torch {torch.__version__}; "
          f"{args.threads} thread{'s' if args.threads != 1 else ''} on both sides"
          + ("" if args.torch_only else f"; {gradus_version(binary)}") + ".\n")
    print(f"{data['train_lines']} training reviews ({data['train_tokens']} tokens with <eos>), test "
          f"{data['test_tokens']} tokens; V = {data['vocab']}; embedding {args.embedding_dim}, LSTM {args.hidden}, "
          f"batch {args.batch}, bptt {args.bptt}, Adam lr {args.lr}, clip {args.clip}, {args.epochs} epoch"
          f"{'s' if args.epochs != 1 else ''}; {args.rounds} round{'s' if args.rounds != 1 else ''} (gradus, then "
          "PyTorch). Medians: epoch times over all epochs of all rounds, test figures over rounds.\n")
    print("| | epoch (s), median | test perplexity | next-word accuracy | `gradus train` wall (s) | "
          "CPUs used by other processes |")
    print("|---|---|---|---|---|---|")
    for k, label in (("gradus", "gradus"), ("torch", "PyTorch")):
        if not results[k]:
            print(f"| {label} | n/a | n/a | n/a | n/a | n/a |")
            continue
        wall = f"{statistics.median(run['wall'] for run in results[k]):.2f}" if k == "gradus" else ""
        print(f"| {label} | {median[k]:.2f} | {perplexity[k]:.2f} | {100 * accuracy[k]:.2f}% | {wall} | "
              f"{statistics.median(others[k]):.0%} |")
    print()
    if median["gradus"] is not None:
        ratio = median["gradus"] / median["torch"]
        ppl_ratio = perplexity["gradus"] / perplexity["torch"]
        print(f"epoch time gradus / PyTorch: {ratio:.2f} (target <= {TARGET_RATIO}: "
              f"{'met' if ratio <= TARGET_RATIO else 'missed'})")
        print(f"perplexity gradus / PyTorch: {ppl_ratio:.3f} (target <= {TARGET_PERPLEXITY_RATIO:g}: "
              f"{'met' if ppl_ratio <= TARGET_PERPLEXITY_RATIO else 'missed'})")
    else:
        print("epoch time gradus / PyTorch: n/a (no gradus run)")
        print("perplexity gradus / PyTorch: n/a (no gradus run)")


if __name__ == "__main__":
    main()
