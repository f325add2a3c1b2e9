"""Tiny Hugging Face model folders and text data, built in temp dirs (no downloads): what `save_pretrained`
writes for a fine-tuned BERT classifier and a sentence-transformers embedder, with their WordPiece tokenizer."""
from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS = {
    "sport": "goal match team player score league coach ball win season",
    "weather": "rain sun cloud wind storm snow cold warm forecast sky",
    "food": "bread cheese soup salad pasta fruit cook taste dinner spice",
}
FILLER = "the a of and to in is it on was with for that this very today".split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def vocab() -> list[str]:
    words = sorted({w for ws in TOPICS.values() for w in ws.split()} | set(FILLER))
    return SPECIAL + words


def tokenizer(root: Path):
    from transformers import BertTokenizerFast

    root.mkdir(parents=True, exist_ok=True)
    (root / "vocab.txt").write_text("\n".join(vocab()) + "\n", encoding="utf-8")
    return BertTokenizerFast(str(root / "vocab.txt"), model_max_length=64)


def texts(n: int, seed: int = 0, max_words: int = 14) -> list[tuple[str, str]]:
    """(text, topic): topic words among filler, of varied length."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic = list(TOPICS)[i % len(TOPICS)]
        words = TOPICS[topic].split()
        k = rng.randint(3, max_words)
        out.append((" ".join(rng.choice(words) if rng.random() < 0.5 else rng.choice(FILLER) for _ in range(k)),
                    topic))
    return out


def _config(layers: int, hidden: int, **kw):
    from transformers import BertConfig

    return BertConfig(vocab_size=len(vocab()), hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=4, intermediate_size=hidden * 2, max_position_embeddings=64, **kw)


def fit(model, enc: dict, y, epochs: int) -> None:
    """A few epochs of the model's own loss (so a teacher is a real one, not random weights)."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for i in range(0, len(y), 32):
            out = model(**{k: v[i:i + 32] for k, v in enc.items()}, labels=y[i:i + 32])
            opt.zero_grad()
            out.loss.backward()
            opt.step()


def classifier(root: Path, layers: int = 4, hidden: int = 32, train: bool = True) -> Path:
    """A BERT sequence classifier over the three topics (briefly trained, so it is a real teacher)."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    labels = list(TOPICS)
    cfg = _config(layers, hidden, num_labels=len(labels), id2label=dict(enumerate(labels)),
                  label2id={n: i for i, n in enumerate(labels)})
    model = BertForSequenceClassification(cfg)
    tok = tokenizer(root)
    if train:
        data = texts(240, seed=1)
        enc = tok([t for t, _ in data], padding=True, return_tensors="pt")
        fit(model, enc, torch.tensor([labels.index(c) for _, c in data]), epochs=3)
    model.eval().save_pretrained(str(root))
    tok.save_pretrained(str(root))
    return root


def embedder(root: Path, layers: int = 4, hidden: int = 32, normalize: bool = True) -> Path:
    """A sentence-transformers folder: BertModel weights, modules.json, 1_Pooling (mean) and Normalize."""
    import torch
    from transformers import BertModel

    torch.manual_seed(0)
    BertModel(_config(layers, hidden), add_pooling_layer=False).eval().save_pretrained(str(root))
    tokenizer(root).save_pretrained(str(root))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (root / "modules.json").write_text(json.dumps(modules))
    (root / "1_Pooling").mkdir(exist_ok=True)
    (root / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": hidden, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
         "pooling_mode_max_tokens": False}))
    return root


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[tuple[str, str]], label_ids: bool = False) -> Path:
    labels = list(TOPICS)
    with open(path, "w", encoding="utf-8") as f:
        for t, c in rows:
            f.write(json.dumps({"text": t, "label": labels.index(c) if label_ids else c}) + "\n")
    return path


def write_txt(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("\n".join(t for t, _ in rows) + "\n", encoding="utf-8")
    return path


def tagger(root: Path, layers: int = 2, hidden: int = 32) -> Path:
    """A BERT token classifier: each word's topic (or O for filler), briefly trained."""
    import torch
    from transformers import BertForTokenClassification

    torch.manual_seed(0)
    tags = ["O", *TOPICS]
    model = BertForTokenClassification(_config(layers, hidden, num_labels=len(tags), id2label=dict(enumerate(tags)),
                                               label2id={t: i for i, t in enumerate(tags)}))
    tok = tokenizer(root)
    topic_of = {w: i + 1 for i, ws in enumerate(TOPICS.values()) for w in ws.split()}
    data = [t for t, _ in texts(240, seed=5)]
    enc = tok(data, padding=True, return_tensors="pt")
    words = [tok.convert_ids_to_tokens(ids) for ids in enc["input_ids"].tolist()]
    fit(model, enc, torch.tensor([[topic_of.get(w, 0) for w in ws] for ws in words]), epochs=4)
    model.eval().save_pretrained(str(root))
    tok.save_pretrained(str(root))
    return root


def distilbert(root: Path, layers: int = 4, dim: int = 32) -> Path:
    """A DistilBERT classifier folder (no token_type_ids; transformer.layer.N with q_lin/k_lin/v_lin)."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    labels = list(TOPICS)
    cfg = DistilBertConfig(vocab_size=len(vocab()), dim=dim, n_layers=layers, n_heads=4, hidden_dim=dim * 2,
                           max_position_embeddings=64, num_labels=len(labels), id2label=dict(enumerate(labels)),
                           label2id={n: i for i, n in enumerate(labels)})
    DistilBertForSequenceClassification(cfg).eval().save_pretrained(str(root))
    tok = tokenizer(root)
    tok.model_input_names = ["input_ids", "attention_mask"]
    tok.save_pretrained(str(root))
    return root
