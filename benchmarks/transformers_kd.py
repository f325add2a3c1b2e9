"""DistilBERT-style distillation of real text models, end to end through edgekd (issue 15).

The task is built from text that ships with Python (no download): the sentences of the docstrings of eight
standard-library packages (asyncio, distutils, email, idlelib, importlib, logging, tkinter, xml); the label is
the package a sentence comes from. A WordPiece tokenizer (`tokenizers`) is trained on those sentences, then
- a 6-layer BERT-style classifier teacher (hidden 256, 4 heads, FFN 1024) is trained on them here, and
  distilled by `edgekd distill` into a 2-layer student (`hf:layers=2`, initialised from teacher layers 0 and 3);
- an embedder teacher (the same 6-layer encoder, then SimCSE contrastive training, mean pooling, normalised,
  saved as a sentence-transformers folder) is distilled into a 2-layer, 128-wide embedder
  (`hf:layers=2,hidden=128,intermediate=512`, projected onto the teacher's 256-dim space), on the sentences
  without labels (data distillation: the teacher's embeddings are the targets).
Each run is exported (optimum / torch.onnx + onnxruntime's transformer optimizer) and quantized (dynamic int8,
and int4 weight-only MatMulNBits) by edgekd. Latency: seq 128 (real tokens), batch 1, 1 thread, p50 of
interleaved rounds, every model side by side. Retention: accuracy ratio (classifier) and mean cosine to the
teacher plus top-1 nearest-neighbour agreement on the held-out texts (embedder). The embedder baseline is the
20-line recipe a user would try first: the teacher exported, then `quantize_dynamic`.
Usage: python benchmarks/transformers_kd.py [--work DIR] [--epochs N]  ->  results/transformers_kd.json
(about 25 minutes on 2 cores; teachers are kept in --work and reused).
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import write_result

import edgekd
from edgekd.data import DataOptions
from edgekd.data import load as load_data
from edgekd.data.text import TextCodec
from edgekd.deploy.measure import host_info, interleaved_p50, mean_cosine, nn_agreement

PACKAGES = ["asyncio", "distutils", "email", "idlelib", "importlib", "logging", "tkinter", "xml"]
SEQ = 128
TEACHER = {"hidden_size": 256, "num_hidden_layers": 6, "num_attention_heads": 4, "intermediate_size": 1024}


def sentences() -> list[tuple[str, str]]:
    """(sentence, package) from the standard library's docstrings (parsed, never imported)."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    out, seen = [], set()
    for pkg in PACKAGES:
        for f in sorted((lib / pkg).rglob("*.py")):
            if "test" in f.parts or "tests" in f.parts:
                continue
            try:
                tree = ast.parse(f.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError):
                continue
            for node in ast.walk(tree):
                if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                doc = ast.get_docstring(node) or ""
                for s in re.split(r"(?<=[.!?])\s+|\n\s*\n", doc):
                    s = " ".join(s.split())
                    if len(s.split()) >= 5 and s not in seen:
                        seen.add(s)
                        out.append((s, pkg))
    return out


def tokenizer(texts: list[str], root: Path):
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(texts, vocab_size=8000, min_frequency=2, show_progress=False)
    root.mkdir(parents=True, exist_ok=True)
    wp.save_model(str(root))
    return BertTokenizerFast(str(root / "vocab.txt"), model_max_length=SEQ)


def _batches(n: int, size: int, gen: torch.Generator):
    order = torch.randperm(n, generator=gen)
    return [order[i:i + size] for i in range(0, n, size)]


def _trim(batch: dict) -> dict:
    width = int(batch["attention_mask"].sum(1).max())
    return {k: v[:, :width] for k, v in batch.items()}


def train_classifier(root: Path, tok, ds, epochs: int) -> None:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, max_position_embeddings=SEQ + 2, num_labels=len(PACKAGES),
                     id2label=dict(enumerate(PACKAGES)), label2id={p: i for i, p in enumerate(PACKAGES)}, **TEACHER)
    model = BertForSequenceClassification(cfg)
    x = {k: torch.from_numpy(v) for k, v in ds.x_train.items()}
    y = torch.from_numpy(ds.y_train)
    steps = epochs * ((len(y) + 31) // 32)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 5e-4, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for epoch in range(epochs):
        t0, total = time.time(), 0.0
        for idx in _batches(len(y), 32, gen):
            out = model(**_trim({k: v[idx] for k, v in x.items()}), labels=y[idx])
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            sched.step()
            total += float(out.loss.detach()) * len(idx)
        print(f"  teacher classifier epoch {epoch + 1}/{epochs}: loss {total / len(y):.3f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    model.eval().save_pretrained(str(root))
    tok.save_pretrained(str(root))


def train_embedder(root: Path, classifier: Path, tok, ds, epochs: int) -> None:
    """SimCSE (Gao et al. 2021): two dropout views of a sentence are positives, the batch's others negatives;
    the encoder starts from the classifier teacher's."""
    import torch.nn.functional as F
    from transformers import BertModel

    torch.manual_seed(0)
    model = BertModel.from_pretrained(str(classifier), add_pooling_layer=False)
    x = {k: torch.from_numpy(v) for k, v in ds.x_train.items()}
    n = len(x["input_ids"])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-5)
    gen = torch.Generator().manual_seed(1)
    model.train()

    def embed(b):
        h = model(**b).last_hidden_state
        m = b["attention_mask"].unsqueeze(-1).float()
        return F.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    for epoch in range(epochs):
        t0, total = time.time(), 0.0
        for idx in _batches(n, 32, gen):
            b = _trim({k: v[idx] for k, v in x.items()})
            sim = embed(b) @ embed(b).T / 0.05
            loss = F.cross_entropy(sim, torch.arange(len(idx)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        print(f"  teacher embedder epoch {epoch + 1}/{epochs}: loss {total / n:.3f} ({time.time() - t0:.0f} s)",
              flush=True)
    model.eval().save_pretrained(str(root))
    tok.save_pretrained(str(root))
    (root / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (root / "1_Pooling").mkdir(exist_ok=True)
    (root / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": TEACHER["hidden_size"], "pooling_mode_mean_tokens": True}))


def seq_feed(tok, texts: list[str], names: list[str]) -> dict[str, np.ndarray]:
    """One batch-1 feed of SEQ real tokens: consecutive test texts joined until they fill SEQ."""
    enc = tok(" ".join(texts[:40]), truncation=True, max_length=SEQ, padding="max_length", return_tensors="np")
    return {k: np.asarray(v, np.int64) for k, v in enc.items() if k in names}


def quantize_both(run: Path) -> dict:
    """edgekd's dynamic int8 (default for transformers) and int4 weight-only, each gated on accuracy."""
    out = {}
    for weights, name in (("int8", "student.int8.onnx"), ("int4", "student.int4.onnx")):
        try:
            q = edgekd.quantize(run, weights=weights, output=str(run / name), allow_slower=True)
            out[weights] = {"path": run / name, "verdict": q.details.get("verdict"), "mode": q.details.get("mode")}
        except edgekd.EdgekdError as e:
            out[weights] = {"error": e.one_line()}
    return out


def recipe_int8(src: Path, dst: Path) -> Path:
    """The 20-line recipe: the teacher's ONNX through quantize_dynamic, defaults."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return dst


def outputs(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    return np.concatenate([sess.run(None, {k: v[i:i + 256] for k, v in feeds.items() if k in names})[0]
                           for i in range(0, len(next(iter(feeds.values()))), 256)])


def torch_p50(model, feed: dict, rounds: int = 5) -> float:
    torch.set_num_threads(1)
    args = {k: torch.from_numpy(v) for k, v in feed.items()}
    times = []
    with torch.inference_mode():
        for _ in range(3):
            model(**args)
        for _ in range(rounds * 10):
            t0 = time.perf_counter()
            model(**args)
            times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "edgekd_transformers_kd"))
    ap.add_argument("--epochs", type=int, default=6, help="teacher classifier epochs")
    ap.add_argument("--kd-epochs", type=int, default=8)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    rows = sentences()
    texts = [t for t, _ in rows]
    import csv

    with open(work / "docstrings.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    (work / "docstrings.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    counts = {p: sum(1 for _, q in rows if q == p) for p in PACKAGES}
    print(f"{len(rows)} docstring sentences: {counts}", flush=True)
    tok_dir = work / "tokenizer"
    tok = tokenizer(texts, tok_dir) if not (tok_dir / "vocab.txt").is_file() else \
        __import__("transformers").BertTokenizerFast(str(tok_dir / "vocab.txt"), model_max_length=SEQ)
    opts = DataOptions(max_length=SEQ)
    ds = load_data(str(work / "docstrings.csv"), opts, codec=TextCodec(tok, dict(enumerate(PACKAGES))))
    cls_dir, emb_dir = work / "teacher_classifier", work / "teacher_embedder"
    if not (cls_dir / "model.safetensors").is_file():
        train_classifier(cls_dir, tok, ds, args.epochs)
    if not (emb_dir / "model.safetensors").is_file():
        train_embedder(emb_dir, cls_dir, tok, ds, 1)
    t_teachers = time.time() - t_start

    res: dict = {"host": host_info(), "task": {"sentences": len(rows), "per_package": counts,
                                               "train": int(len(ds.y_train)), "test": int(len(ds.y_test))}}
    runs = {"classifier": (cls_dir, work / "docstrings.csv", "hf:layers=2", "run_classifier"),
            "embedder": (emb_dir, work / "docstrings.txt", "hf:layers=2,hidden=128,intermediate=512", "run_embedder")}
    for name, (teacher, data, student, run_name) in runs.items():
        run = work / run_name
        t0 = time.time()
        d = edgekd.distill(str(teacher), str(data), run, student=student, epochs=args.kd_epochs, lr=5e-4,
                           batch_size=32, force=True, show_progress=False)
        seconds = time.time() - t0
        edgekd.export(run)
        q = quantize_both(run)
        res[name] = {"teacher_params": d.teacher_params, "student_params": d.student_params,
                     "param_ratio": d.param_ratio, "distill_seconds": seconds, "student": student,
                     "verdict": d.verdict, "quantize": {k: {kk: str(vv) for kk, vv in v.items()}
                                                        for k, v in q.items()}}
        print(f"{name}: {d.verdict} ({seconds:.0f} s)", flush=True)
        res[name].update(measure(name, run, tok, q))
    res["seconds"] = {"teachers": t_teachers, "total": time.time() - t_start}
    path = write_result("transformers_kd", res)
    print(f"wrote {path}")


def measure(name: str, run: Path, tok, q: dict) -> dict:
    """Latency at seq 128 / batch 1 / 1 thread (interleaved) and retention on the held-out texts."""
    from edgekd.api.rundir import RunDir
    from edgekd.api.target import read_eval, run_teacher

    test, labels, _, _ = read_eval(RunDir.open(run))
    paths = {"teacher_onnx": run / "teacher.onnx", "teacher_optimized": run / "teacher.optimized.onnx",
             "student_fp32": run / "student.onnx", "student_optimized": run / "student.optimized.onnx"}
    if name == "embedder":
        paths["teacher_recipe_int8"] = recipe_int8(run / "teacher.onnx", run / "teacher.recipe_int8.onnx")
    for w in ("int8", "int4"):
        if "path" in q[w]:
            paths[f"student_{w}"] = q[w]["path"]
    paths = {k: v for k, v in paths.items() if Path(v).is_file()}
    texts = [ln for ln in (run.parent / "docstrings.txt").read_text(encoding="utf-8").splitlines()][-200:]
    feed = seq_feed(tok, texts, list(test))
    keys = list(paths)
    p50 = dict(zip(keys, interleaved_p50([paths[k] for k in keys], feed, threads=1, rounds=7, runs=30,
                                         max_seconds=1.0)))
    teacher = run_teacher(RunDir.open(run))
    p50["teacher_pytorch"] = torch_p50(teacher.inner, feed)
    outs = {k: outputs(p, test) for k, p in paths.items()}
    quality = {}
    ref = outs["teacher_onnx"]
    for k, o in outs.items():
        if name == "classifier":
            acc = float((o.argmax(-1) == labels).mean())
            quality[k] = {"accuracy": acc, "retention": acc / float((ref.argmax(-1) == labels).mean())}
        else:
            quality[k] = {"mean_cosine_to_teacher": mean_cosine(o, ref), "nn_agreement": nn_agreement(ref, o)}
    base = "teacher_onnx" if name == "classifier" else "teacher_recipe_int8"
    best = "student_int8" if "student_int8" in p50 else "student_optimized"
    out = {"p50_ms_seq128_b1_t1": p50, "quality": quality,
           "speedup": {f"{k}_vs_{base}": p50[base] / p50[k] for k in p50 if k.startswith("student")},
           "target": {"baseline": base, "model": best, "speedup": p50[base] / p50[best]}}
    line = " | ".join(f"{k} {v:.2f} ms" for k, v in p50.items())
    print(f"  {name} p50 @ seq {SEQ}: {line}")
    print(f"  {name} quality: {json.dumps(quality)}")
    print(f"  {name}: {best} is {out['target']['speedup']:.2f}x faster than {base}", flush=True)
    return out


if __name__ == "__main__":
    main()
