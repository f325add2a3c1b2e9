"""Text data for Hugging Face teachers: `.txt` (one text per line, unlabeled), `.csv` / `.jsonl` with a text
column (and a label column: names or ids; a second text column for pairs), or a `datasets` folder saved with
`save_to_disk`. Texts are tokenised with the teacher's own tokenizer into int64 arrays named after its inputs
(`input_ids`, `attention_mask`, `token_type_ids`), padded to the longest text (at most `max_length`; longer
texts are truncated and counted); training trims each batch to its own longest text.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError

TEXT_SUFFIXES = {".txt", ".jsonl", ".csv", ".tsv"}


@dataclass
class TextCodec:
    """How texts become model inputs: the teacher's tokenizer and label names (id2label)."""

    tokenizer: object
    labels: dict[int, str] | None = None  # id -> name, from the teacher's config (None: an embedder)
    inputs: tuple[str, ...] | None = None  # the inputs the model takes (a tokenizer may make more)


def codec_for(teacher) -> TextCodec | None:
    """A Hugging Face teacher's tokenizer, labels and inputs, for reading text data (None for others).
    Embedders and token classifiers learn from the teacher's outputs alone: their data's labels are not read."""
    tok = getattr(teacher, "tokenizer", None)
    if tok is None:
        return None
    labels = None if teacher.task != "classification" else {int(k): str(v) for k, v in
                                                              teacher.config.id2label.items()}
    return TextCodec(tok, labels, tuple(teacher.input_names))


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model")


def codec_for_onnx(model: Path, input_names: list[str], tokenizer: str | None = None) -> TextCodec:
    """Texts for a plain ONNX text model: the tokenizer given (`--tokenizer`: a folder or a tokenizer.json),
    else the one saved beside the model (as optimum and sentence-transformers export it), feeding the inputs
    the model takes by name; labels from a config.json beside it (id2label), when there is one."""
    where = Path(tokenizer) if tokenizer else model.parent
    if tokenizer and not where.exists():
        raise UsageError(f"--tokenizer {tokenizer} does not exist", "pass a tokenizer folder or a tokenizer.json")
    if where.is_dir() and not any((where / f).is_file() for f in TOKENIZER_FILES):
        hint = "pass --tokenizer PATH (a folder saved with tokenizer.save_pretrained, or its tokenizer.json)"
        raise UsageError(f"text data for {model.name} needs its tokenizer: none beside it in {where}"
                         if not tokenizer else f"--tokenizer {tokenizer}: no tokenizer files there "
                         f"({', '.join(TOKENIZER_FILES[:2])})", hint)
    try:
        import transformers
    except ImportError:
        from ..errors import install_hint

        raise UsageError("reading text for an ONNX model needs transformers' tokenizers", install_hint("hf")) from None
    try:
        tok = (transformers.PreTrainedTokenizerFast(tokenizer_file=str(where)) if where.is_file() else
               transformers.AutoTokenizer.from_pretrained(str(where), local_files_only=True))
    except Exception as e:
        raise UsageError(f"the tokenizer in {where} cannot be loaded ({type(e).__name__}: {str(e)[:160]})",
                         "save it with tokenizer.save_pretrained(PATH) and pass --tokenizer PATH") from None
    if tok.pad_token is None:  # a bare tokenizer.json may name no padding token: ids of 0, masked out
        tok.pad_token = tok.unk_token or (tok.convert_ids_to_tokens(0) if tok.vocab_size else None)
    labels = None
    config = (where if where.is_dir() else where.parent) / "config.json"
    if config.is_file():
        try:
            raw = json.loads(config.read_text(encoding="utf-8")).get("id2label")
            labels = {int(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else None
        except (ValueError, AttributeError, TypeError, RecursionError):  # labels are a nicety: without them, ids
            labels = None
    return TextCodec(tok, labels, tuple(n for n in input_names if n in ("input_ids", "attention_mask",
                                                                         "token_type_ids", "position_ids")))


def is_text(path: Path, opts) -> bool:
    """A text data set: .txt/.jsonl, a .csv/.tsv whose header has the text column, or a datasets folder."""
    if path.is_dir():
        return (path / "dataset_info.json").is_file() or (path / "state.json").is_file() or \
            (path / "dataset_dict.json").is_file()
    suffix = path.suffix.lower()
    if suffix in (".txt", ".jsonl"):
        return True
    if suffix in (".csv", ".tsv"):
        try:
            with open(path, encoding=encoding(opts), errors="replace") as f:
                header = f.readline()
        except OSError:
            return False
        return opts.text_column in [h.strip() for h in header.strip().split("\t" if suffix == ".tsv" else ",")]
    return False


def encoding(opts) -> str:
    """The --encoding asked for, checked against Python's codecs (a typo is named, not a LookupError)."""
    import codecs

    name = getattr(opts, "encoding", None) or "utf-8"
    try:
        codecs.lookup(name)
    except LookupError:
        raise UsageError(f"--encoding {name!r} is not an encoding Python knows",
                         "e.g. --encoding utf-8, latin-1, cp1252 or utf-16") from None
    return name


def _guess(raw: bytes) -> str:
    """What a file that is not in the asked-for encoding probably is, for the hint (a BOM says it; bytes that
    are not UTF-8 are most often Windows' cp1252 or latin-1)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if b"\x00" in raw[:4096]:
        return "utf-16 or binary"
    return "cp1252 or latin-1"


def _lines(path: Path, opts=None) -> list[str]:
    """The file's lines in --encoding (UTF-8 by default; a bad byte names its line, the encoding it probably is
    and the option that reads it)."""
    raw = path.read_bytes()
    enc = encoding(opts)
    if codecs_utf8(enc):
        out = []
        for i, line in enumerate(raw.splitlines(), start=1):
            try:
                out.append(line.decode("utf-8-sig" if i == 1 else "utf-8"))
            except UnicodeDecodeError as e:
                guess = _guess(raw)
                raise UsageError(f"{path} line {i} is not UTF-8 (byte {line[e.start]:#x} at column {e.start + 1}; "
                                 f"it looks like {guess})", f"pass --encoding {guess.split()[0]}, or re-save the "
                                 "file as UTF-8") from None
        return out
    try:
        return raw.decode(enc).splitlines()
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise UsageError(f"{path} line {line} is not {enc} (byte {raw[e.start]:#x})",
                         "pass the file's own --encoding (utf-8, cp1252, latin-1, utf-16)") from None


def codecs_utf8(name: str) -> bool:
    import codecs

    return codecs.lookup(name).name in ("utf-8", "utf-8-sig")


def read_texts(path: Path, opts, want_labels: bool = True) -> tuple[list[str], list[str] | None, list | None]:
    """(texts, second texts for pairs or None, raw labels or None) from any text format."""
    suffix = path.suffix.lower()
    if path.is_dir():
        rows = _datasets_rows(path)
    elif suffix == ".txt":
        texts = [t for t in (ln.strip() for ln in _lines(path, opts)) if t]
        if not texts:
            raise UsageError(f"{path} holds no text (every line is empty)", "put one text per line")
        return texts, None, None
    elif suffix == ".jsonl":
        rows = []
        for i, ln in enumerate(_lines(path, opts), start=1):
            if not ln.strip():
                continue
            try:
                row = json.loads(ln)
            except json.JSONDecodeError as e:
                raise UsageError(f"{path} line {i} is not JSON ({e.msg})", "one JSON object per line") from None
            except RecursionError:
                raise UsageError(f"{path} line {i} nests deeper than any real row (a corrupt or hostile file)",
                                 'write {"text": ..., "label": ...} per line') from None
            if not isinstance(row, dict):
                raise UsageError(f"{path} line {i} is a JSON {type(row).__name__}, not an object",
                                 'write {"text": ..., "label": ...} per line')
            rows.append((i, row))
    else:
        import csv

        lines = _lines(path, opts)
        reader = csv.DictReader(lines, delimiter="\t" if suffix == ".tsv" else ",")
        rows = [(i, row) for i, row in enumerate(reader, start=2)]
    return _columns(path, rows, opts, want_labels)


def _columns(path: Path, rows: list, opts, want_labels: bool):
    if not rows:
        raise UsageError(f"{path} has no rows", "one text per row")
    tc, pc, lc = opts.text_column, opts.text_pair_column, opts.label_column
    first = rows[0][1]
    for col, flag in ((tc, "--text-column"), (pc, "--text-pair-column")):
        if col and col not in first:
            raise UsageError(f"{path} has no column {col!r} (columns: {', '.join(map(str, first))})",
                             f"name the text column with {flag}")
    texts, pairs, labels = [], [] if pc else None, [] if want_labels and lc in first else None
    for line, row in rows:
        t = row.get(tc)
        if not isinstance(t, str) or not t.strip():
            raise UsageError(f"{path} line {line}: column {tc!r} is empty or not text ({t!r})",
                             "drop empty rows, or fill them in")
        texts.append(t)
        if pairs is not None:
            pairs.append(str(row.get(pc) or ""))
        if labels is not None:
            v = row.get(lc)
            if v is None or (isinstance(v, str) and not v.strip()):
                raise UsageError(f"{path} line {line}: column {lc!r} is empty", "give every row a label, or "
                                 "pass the unlabeled texts as --unlabeled FILE.txt")
            labels.append(v)
    return texts, pairs, labels


def _datasets_rows(path: Path) -> list:
    try:
        import datasets
    except ImportError:
        raise UsageError(f"{path} is a `datasets` folder, but the datasets package is not installed",
                         "pip install datasets, or export the texts to .jsonl") from None
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise UsageError(f"{path} cannot be read with datasets.load_from_disk ({type(e).__name__}: {str(e)[:120]})",
                         "save it with Dataset.save_to_disk(PATH)") from None
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"] if "train" in ds else next(iter(ds.values()))
    feature = ds.features.get("label") if hasattr(ds, "features") else None
    names = getattr(feature, "names", None)
    return [(i, {**row, **({"label": names[row["label"]]} if names and isinstance(row.get("label"), int) else {})})
            for i, row in enumerate(ds, start=1)]


def label_ids(path: Path, raw: list, codec: TextCodec, column: str) -> np.ndarray:
    """Labels (names or ids) as the teacher's class ids: names through its label2id, ids checked against
    its id2label; a label the teacher does not know is an error naming it and the teacher's labels."""
    known = codec.labels or {}
    by_name = {str(v): int(k) for k, v in known.items()}
    generic = all(str(v) == f"LABEL_{k}" for k, v in known.items())
    out = []
    names_seen: list[str] = sorted({str(v) for v in raw if not _intlike(v)})
    for v in raw:
        if _intlike(v):
            i = int(v)
            if known and not 0 <= i < len(known):
                raise UsageError(f"{path}: label {i} in column {column!r} is not a class of the teacher "
                                 f"(it has {len(known)}: 0..{len(known) - 1})", "use the teacher's label ids")
            out.append(i)
        elif str(v) in by_name:
            out.append(by_name[str(v)])
        elif generic and len(names_seen) <= len(known):
            out.append(names_seen.index(str(v)))  # a teacher with LABEL_0.. names: sorted names, said in a note
        else:
            shown = ", ".join(list(by_name)[:8])
            raise UsageError(f"{path}: label {v!r} in column {column!r} is not one of the teacher's labels "
                             f"({shown})", "use the names in the teacher's config.json id2label, or their ids")
    return np.asarray(out, np.int64)


def _intlike(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) or \
        isinstance(v, str) and v.strip().lstrip("-").isdigit()


def tokenize(texts: list[str], pairs: list[str] | None, codec: TextCodec, max_length: int) -> tuple[dict, int, int]:
    """({input name: int64 (N, L)}, texts truncated, longest length before truncation)."""
    tok = codec.tokenizer
    full = tok(texts, pairs, truncation=False, padding=False)["input_ids"]
    lengths = np.fromiter((len(ids) for ids in full), np.int64, len(full))
    limit = int(min(max_length, getattr(tok, "model_max_length", max_length) or max_length))
    width = int(min(limit, lengths.max()))
    enc = tok(texts, pairs, truncation=True, max_length=width, padding="max_length", return_tensors="np")
    wanted = codec.inputs or tok.model_input_names
    arrays = {k: np.asarray(v, np.int64) for k, v in enc.items() if k in wanted}
    return arrays, int((lengths > width).sum()), int(lengths.max())


def length_order(mask: np.ndarray, batch_size: int, gen: np.random.Generator | None = None,
                 bucket_batches: int = 50) -> np.ndarray:
    """A shuffled order whose batches hold texts of similar length: shuffle, sort by length within chunks of
    `bucket_batches` batches, then shuffle the batches (padding per batch, not per data set)."""
    gen = gen or np.random.default_rng(0)
    n = len(mask)
    order = gen.permutation(n)
    lengths = mask.sum(1)
    chunk = batch_size * bucket_batches
    for i in range(0, n, chunk):
        part = order[i:i + chunk]
        order[i:i + chunk] = part[np.argsort(lengths[part], kind="stable")]
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    return np.concatenate([batches[j] for j in gen.permutation(len(batches))]) if batches else order


AUGMENT_COPIES = 3    # teacher-labelled variants per training text (--augment on text data)
AUGMENT_RATE = 0.15   # share of each text's tokens replaced


def augmented(x: dict[str, np.ndarray], special: set[int], copies: int = AUGMENT_COPIES, rate: float = AUGMENT_RATE,
              seed: int = 0) -> dict[str, np.ndarray]:
    """The training texts and `copies` variants of each with `rate` of their real tokens replaced by tokens
    drawn from the training texts themselves (TinyBERT's word replacement, without a masked LM to choose the
    words: a sentence embedder has none). The variants are new inputs for the teacher to label — its outputs
    are the targets, so no label is needed, and they are fixed samples, so the teacher cache still holds.
    On a real pretrained embedder distilled from technical prose, this is what moved the held-out cosine on
    text of another source most (benchmarks/RESULTS.md, issue 26)."""
    ids, mask = x["input_ids"], x["attention_mask"].astype(bool)
    real = mask & ~np.isin(ids, list(special))
    pool = ids[real]
    if copies < 1 or pool.size == 0:
        return x
    rng = np.random.default_rng(seed)
    variants = [x]
    for _ in range(copies):
        new = ids.copy()
        pick = real & (rng.random(ids.shape) < rate)
        new[pick] = pool[rng.integers(0, pool.size, int(pick.sum()))]
        variants.append({**x, "input_ids": new})
    return {k: np.concatenate([v[k] for v in variants]) for k in x}
