"""A real pretrained text classifier distilled by edgekd (issue 26, part 4): the English web-topic classifier
that the `categorium` package ships (a BERT trained by its authors: 2 layers, 32 wide, 2 heads, a 30,500-token
uncased WordPiece vocabulary, 27 topics such as autos, finance, health, sports), converted once from the
package's Keras weights into a Hugging Face folder (h5py only: no TensorFlow here).

It is already tiny, so this measures what a real fine-tuned classifier keeps when cut, not a headline
speed-up: `--student hf:layers=1` (one of its two layers, initialised from it) distilled on unlabeled text
(data distillation: the teacher's logits are the targets), exported and dynamic-int8 quantized by edgekd. On
300 held-out sentences of another source (installed packages' descriptions): top-1 agreement of the int8
student with the fp32 teacher, beside the teacher's own dynamic int8 (export + quantize_dynamic); latency at 128
tokens, batch 1, 1 thread, interleaved.
Usage: python benchmarks/pretrained_classifier.py [--epochs N]  ->  results/pretrained_classifier.json (needs h5py)
(a few minutes on 2 cores)
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
from common import OUT, write_result
from pretrained_embedder import held_out
from transformers_kd import outputs, recipe_int8, sentences, seq_feed

import edgekd
from edgekd.deploy.measure import host_info, interleaved_p50

PACKAGE = "categorium==0.2.2"
MODEL = "categorium/modelos/en"
STUDENTS = {"layers=1": "hf:layers=1", "layers=1,frozen": "hf:layers=1,freeze=embeddings"}
# what a sentence about each topic is called (a check that the converted weights classify, not a benchmark)
PROBES = {"autos": "The new sedan has a turbocharged engine, leather seats and all-wheel drive.",
          "sports": "The striker scored twice as the home team won the championship final.",
          "food": "Bake the bread for forty minutes, then let it cool before slicing."}


def _keras_weights(h5: Path) -> dict[str, np.ndarray]:
    """The Keras checkpoint's arrays under Hugging Face's PyTorch names (dense kernels transposed)."""
    import h5py

    out = {}
    with h5py.File(h5, "r") as f:
        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            key = name.split("tf_bert_for_sequence_classification/", 1)[1].removesuffix(":0")
            key = key.replace("layer_._", "layer.").replace("/", ".")
            key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
            arr = np.asarray(obj)
            if key.endswith(".kernel"):
                key, arr = key.removesuffix(".kernel") + ".weight", arr.T
            elif key.endswith("_embeddings.embeddings"):
                key = key.removesuffix(".embeddings") + ".weight"
            out[key] = np.ascontiguousarray(arr)
        f.visititems(visit)
    return out


def teacher_folder() -> Path:
    """The categorium English classifier as a Hugging Face folder in benchmarks/out (made once)."""
    dest = OUT / "categorium-en"
    if (dest / "model.safetensors").is_file():
        return dest
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    src = OUT / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d",
                    str(src), PACKAGE], check=True)
    root = OUT / "categorium-src"
    with tarfile.open(next(src.glob("categorium-*.tar.gz"))) as t:
        t.extractall(root, filter="data")
    model = next(root.glob(f"categorium-*/{MODEL}"))
    config = json.loads((model / "en_hultig_model" / "config.json").read_text())
    with open(model / "en_categorias.csv", encoding="utf-8-sig") as f:
        labels = [row["cat"] for row in csv.DictReader(f)]
    config["id2label"] = dict(enumerate(labels))
    config["label2id"] = {v: k for k, v in enumerate(labels)}
    net = BertForSequenceClassification(BertConfig(**config)).eval()
    weights = {k: torch.from_numpy(v) for k, v in _keras_weights(model / "en_hultig_model" / "tf_model.h5").items()}
    vocab = weights["bert.embeddings.word_embeddings.weight"].shape[0]
    missing, unexpected = net.load_state_dict(weights, strict=False)
    if unexpected or [m for m in missing if "position_ids" not in m]:
        raise SystemExit(f"weights do not map: missing {missing}, unexpected {unexpected}")
    net.save_pretrained(dest)
    tok = BertTokenizerFast(str(next(model.glob("*-vocab.txt"))), do_lower_case=True, model_max_length=512)
    tok.save_pretrained(dest)
    assert vocab == net.config.vocab_size
    return dest


def probe(folder: Path) -> dict[str, str]:
    """The converted teacher's topic for a sentence of each probe topic."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    net = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    with torch.inference_mode():
        logits = net(**tok(list(PROBES.values()), padding=True, return_tensors="pt")).logits
    return {want: net.config.id2label[int(i)] for want, i in zip(PROBES, logits.argmax(-1))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--work", default=str(OUT / "pretrained_classifier"))
    args = ap.parse_args()
    from transformers import AutoTokenizer

    teacher = teacher_folder()
    probes = probe(teacher)
    print(f"teacher {teacher}; probe sentences (topic -> teacher's answer): {probes}", flush=True)
    tok = AutoTokenizer.from_pretrained(str(teacher))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    docs = [t for t, _ in sentences()]
    train = [docs[i] for i in rng.permutation(len(docs))[:4000]]
    data = work / "train.txt"
    data.write_text("\n".join(train) + "\n", encoding="utf-8")
    test = held_out()
    enc = tok(test, truncation=True, max_length=128, padding=True, return_tensors="np")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    feeds = {k: np.asarray(v, np.int64) for k, v in enc.items() if k in names}
    rows, paths = {}, {}
    for name, student in STUDENTS.items():
        run = work / f"run_{name.replace(',', '_').replace('=', '')}"
        t0 = time.time()
        d = edgekd.distill(str(teacher), str(data), run, student=student, epochs=args.epochs, batch_size=32,
                           force=True, show_progress=False)
        seconds = time.time() - t0
        edgekd.export(run)
        q = edgekd.quantize(run, allow_slower=True)
        ref = outputs(run / "teacher.onnx", feeds).argmax(-1)
        int8 = run / "student.int8.onnx"
        shipped = int8 if int8.is_file() else run / "student.onnx"
        if not paths:
            paths["teacher_fp32"] = run / "teacher.onnx"
            paths["teacher_dynamic_int8"] = recipe_int8(run / "teacher.onnx", run / "teacher.recipe_int8.onnx")
            rows["teacher_dynamic_int8"] = {
                "heldout_top1_agreement": float((outputs(paths["teacher_dynamic_int8"], feeds).argmax(-1)
                                                 == ref).mean())}
        paths[f"student_{name}"] = shipped
        rows[name] = {"student": student, "distill_seconds": round(seconds, 1), "epochs": d.epochs,
                      "student_params": d.student_params, "teacher_params": d.teacher_params,
                      "train_split_agreement": d.agreement, "int8_written": int8.is_file(),
                      "quantize": q.details.get("verdict"),
                      "heldout_top1_agreement": float((outputs(shipped, feeds).argmax(-1) == ref).mean()),
                      "heldout_topics_used": int(len(set(ref.tolist())))}
        print(f"{name}: held-out top-1 agreement {rows[name]['heldout_top1_agreement']:.3f} "
              f"(teacher's dynamic int8 {rows['teacher_dynamic_int8']['heldout_top1_agreement']:.3f}), "
              f"{seconds:.0f} s distill", flush=True)
    feed = seq_feed(tok, test, names)
    p50 = dict(zip(paths, interleaved_p50(list(paths.values()), feed, threads=1, rounds=7, runs=50,
                                          max_seconds=1.0)))
    speed = {k: p50["teacher_dynamic_int8"] / v for k, v in p50.items() if k.startswith("student_")}
    print(f"p50 ms @128 tokens: {p50}; speed-up vs the teacher's dynamic int8: {speed}", flush=True)
    write_result("pretrained_classifier", {"host": host_info(), "teacher": str(teacher), "probes": probes,
                                           "rows": rows, "p50_ms_seq128_b1_t1": p50,
                                           "speedup_vs_teacher_dynamic_int8": speed})


if __name__ == "__main__":
    main()
