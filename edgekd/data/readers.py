"""Readers for each data SPEC format; each returns a `Read` of validated arrays.

y is -1 for samples without a label. Every problem is a one-line UsageError naming the file and the array.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import UsageError
from ..files import regular_or_dir

LABELS = ("y", "y_test")


class Read(NamedTuple):
    x: object                  # an array, or {input name: array}
    y: np.ndarray
    x_test: object = None
    y_test: np.ndarray | None = None
    kind: str = "array"
    constants: dict = {}
    x_name: str = "x"          # the name a single input array had in the file
    notes: tuple = ()

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def read(spec: str, opts, want_labels: bool = True, codec=None) -> Read:
    from . import text

    path = Path(spec)
    if spec != "digits":
        regular_or_dir(path, "data")
    if spec != "digits" and path.exists() and (text.is_text(path, opts) or (
            codec is not None and path.suffix.lower() in text.TEXT_SUFFIXES)):
        return _text(path, opts, want_labels, codec)
    return Read(*_read(spec, opts, want_labels))


def _text(path: Path, opts, want_labels: bool, codec) -> Read:
    """Texts tokenised with the teacher's tokenizer (kind `text`), labels mapped to the teacher's ids."""
    from . import text

    if codec is None:
        raise UsageError(f"{path} is text data: it needs a Hugging Face teacher whose tokenizer reads it",
                         "pass --teacher hf:PATH (a folder with config.json, weights and tokenizer files)")
    if not 1 <= opts.max_length <= 100_000:
        raise UsageError(f"--max-length must be 1..100000, got {opts.max_length}", "e.g. --max-length 128")
    want = want_labels and codec.labels is not None
    texts, pairs, raw = text.read_texts(path, opts, want)
    specials = codec.tokenizer.num_special_tokens_to_add(pair=pairs is not None)
    if opts.max_length <= specials:
        raise UsageError(f"--max-length {opts.max_length} leaves no room for text: the tokenizer adds {specials} "
                         "special tokens to each", f"use --max-length {specials + 1} or more (e.g. 128)")
    x, truncated, longest = text.tokenize(texts, pairs, codec, opts.max_length)
    width = next(iter(x.values())).shape[1]
    notes = [f"{path.name}: {len(texts)} texts tokenised with the teacher's tokenizer, padded to {width} tokens"]
    if truncated:
        notes.append(f"{path.name}: {truncated} of {len(texts)} texts were longer than {width} tokens (the longest "
                     f"{longest}) and were truncated; raise --max-length to keep more")
    if raw is None:
        return Read(x, np.full(len(texts), -1, np.int64), kind="text", notes=tuple(notes))
    y = labels(path, opts.label_column, text.label_ids(path, raw, codec, opts.label_column), len(texts))
    return Read(x, y, kind="text", notes=tuple(notes))


def _renamed(path: Path, arrays: dict, name: str):
    """One input saved under its own name (`pixels`, `pixels_test`): read as `x`, keeping the name."""
    arrays = {("x" if a == name else "x_test" if a == f"{name}_test" else a): v for a, v in arrays.items()}
    return (*_plain_npz(path, arrays), {}, name)


def _read(spec: str, opts, want_labels: bool):
    if spec == "digits":
        return _digits()
    path = Path(spec)
    if not path.exists():
        raise UsageError(f"data {spec!r} does not exist",
                         "pass digits, an .npz/.npy/.csv file, or an image folder (dir/class_x/*.png)")
    if path.is_dir():
        return _image_folder(path, opts)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _npz(path)
    if suffix == ".npy":
        return _npy(path)
    if suffix == ".csv":
        return _csv(path, opts.label_column if want_labels else None, opts)
    raise UsageError(f"unknown data format {path.name!r}: expected .npz, .npy, .csv or a folder",
                     "e.g. --data file.npz holding arrays `x` and `y`")


def _digits():
    """scikit-learn's bundled 8x8 digits (no download): images scaled to [0, 1], shape (N, 1, 8, 8)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    return x, bunch.target.astype(np.int64), None, None, "array"


def _npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # a truncated or non-npz file
        raise UsageError(f"{path} is not a readable .npz file ({type(e).__name__}: {e})",
                         "write it with numpy.savez(path, x=..., y=...)") from None
    if "x" not in arrays:  # arrays named after the model's inputs, or a mistake
        names = [k for k in arrays if k not in LABELS and not k.endswith("_test")]
        named = [k for k in names if arrays[k].ndim >= 2]
        if len(named) == 1 and names == named:  # one input under its own name
            return _renamed(path, arrays, named[0])
        if named and ("y" in arrays or len(named) >= 2):  # arrays named after the model's inputs
            return _named_npz(path, arrays)
        raise UsageError(f"{path} has no array 'x' (found: {', '.join(sorted(arrays)) or 'nothing'})",
                         "save inputs as `x` and integer labels as `y` (numpy.savez(path, x=x, y=y)), or name "
                         "one array per model input")
    return _plain_npz(path, arrays)


def _plain_npz(path: Path, arrays: dict):
    x = inputs(path, "x", arrays["x"])
    y = labels(path, "y", arrays["y"], len(x)) if "y" in arrays else np.full(len(x), -1, np.int64)
    xt = yt = None
    if "x_test" in arrays:
        xt = inputs(path, "x_test", arrays["x_test"])
        if xt.shape[1:] != x.shape[1:]:
            raise UsageError(f"{path}: x_test has shape {xt.shape[1:]} per sample but x has {x.shape[1:]}",
                             "give train and test inputs the same shape")
        yt = labels(path, "y_test", arrays["y_test"], len(xt), check_classes=False) if "y_test" in arrays else None
    return x, y, xt, yt, "array"


def _named_npz(path: Path, arrays: dict):
    """Arrays named after the model's inputs (`input_ids`, `attention_mask`, ...), `NAME_test` for the test
    split, `y`/`y_test` labels; an array whose length is not the sample count is a constant (a sample rate,
    an initial state) and is fed as it is."""
    names = [k for k in arrays if k not in LABELS and not k.endswith("_test")]
    lengths = [len(arrays[k]) for k in names if arrays[k].ndim >= 1]
    n = len(arrays["y"]) if "y" in arrays else max(set(lengths), key=lengths.count, default=0)
    per_sample = [k for k in names if arrays[k].ndim >= 2 and len(arrays[k]) == n]
    if not per_sample:
        raise UsageError(f"{path}: no input array has {n} samples on its first axis "
                         f"(arrays: {', '.join(f'{k} {arrays[k].shape}' for k in names)})",
                         "store one sample per row of each input (axis 0)")
    x = {k: inputs(path, k, arrays[k]) for k in per_sample}
    constants = {k: _finite(path, k, arrays[k]) for k in names if k not in per_sample}
    y = labels(path, "y", arrays["y"], n) if "y" in arrays else np.full(n, -1, np.int64)
    tests = [k for k in per_sample if f"{k}_test" in arrays]
    xt = yt = None
    if tests:
        if len(tests) != len(per_sample):
            missing = sorted(set(per_sample) - set(tests))
            raise UsageError(f"{path}: test arrays are given for {', '.join(tests)} but not for "
                             f"{', '.join(missing)}", f"add {missing[0]}_test, or drop every *_test array")
        xt = {k: inputs(path, f"{k}_test", arrays[f"{k}_test"]) for k in per_sample}
        nt = {len(v) for v in xt.values()}
        if len(nt) > 1:
            raise UsageError(f"{path}: the *_test arrays have different numbers of samples ({sorted(nt)})",
                             "give every test input the same number of samples")
        yt = labels(path, "y_test", arrays["y_test"], nt.pop(), check_classes=False) if "y_test" in arrays else None
    return x, y, xt, yt, "array", constants


def _finite(path, name: str, a: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise UsageError(f"{path}: `{name}` holds NaN or inf", "replace those values")
        return a.astype(np.float32)
    return a


def _npy(path: Path):
    """Inputs from an .npy, memory-mapped: bench, quantize and calibration read the rows they use, so a file
    larger than memory never loads whole."""
    try:
        x = np.load(path, allow_pickle=False, mmap_mode="r")
    except Exception as e:
        raise UsageError(f"{path} is not a readable .npy file ({type(e).__name__})",
                         "write it with numpy.save(path, x)") from None
    x = inputs(path, "array", x)
    return x, np.full(len(x), -1, np.int64), None, None, "array"


def _csv(path: Path, label_column: str | None, opts=None):
    import csv
    import io

    from .text import _lines

    rows = list(csv.reader(io.StringIO("\n".join(_lines(path, opts)))))  # a bad byte is an error naming its line
    if len(rows) < 2:
        raise UsageError(f"{path} has no data rows", "the first row names the columns, one sample per row after it")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if label_column and label_column not in header:
        raise UsageError(f"{path} has no label column {label_column!r} (columns: {', '.join(header[:12])})",
                         "name it with --label-column")
    li = header.index(label_column) if label_column else None
    feats = [i for i in range(len(header)) if i != li]
    try:
        x = np.array([[float(r[i]) for i in feats] for r in body], np.float32)
    except (ValueError, IndexError) as e:
        bad = next(n for n, r in enumerate(body, start=2) if len(r) != len(header) or
                   any(not _is_float(r[i]) for i in feats if i < len(r)))
        raise UsageError(f"{path} line {bad}: every feature column must be a number ({type(e).__name__})",
                         "encode categorical columns as numbers first") from None
    if li is None:
        return inputs(path, "features", x), np.full(len(x), -1, np.int64), None, None, "array"
    raw = [r[li].strip() for r in body]
    if all(_is_int(v) for v in raw):
        y = np.array([int(v) for v in raw], np.int64)
    else:  # class names: sorted, so the mapping is stable
        names = sorted(set(raw))
        y = np.array([names.index(v) for v in raw], np.int64)
    return inputs(path, "features", x), labels(path, label_column, y, len(x)), None, None, "array"


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _is_int(v: str) -> bool:
    return v.lstrip("-").isdigit()


def _image_folder(root: Path, opts):
    """dir/class_x/*.png|jpg: classes sorted by name; resized, scaled to [0, 1], normalised (x - mean) / std."""
    from PIL import Image

    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise UsageError(f"{root} has no class folders", "lay images out as DIR/CLASS_NAME/*.png")
    files = [(p, ci) for ci, c in enumerate(classes) for p in sorted((root / c).iterdir())
             if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise UsageError(f"{root} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})",
                         "put images in DIR/CLASS_NAME/")
    mode = "L" if opts.channels == 1 else "RGB"
    size = opts.image_size
    arrays = []
    for p, _ in files:
        try:
            with Image.open(p) as im:
                im = im.convert(mode)
                size = size or im.size[0]
                arrays.append(np.asarray(im.resize((size, size)), np.float32) / 255.0)
        except Exception as e:
            raise UsageError(f"{p} is not a readable image ({type(e).__name__})", "remove or replace it") from None
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    mean = np.asarray(opts.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(opts.std, np.float32).reshape(1, -1, 1, 1)
    if (std <= 0).any():
        raise UsageError(f"--std must be > 0, got {list(opts.std)}", "e.g. --std 0.5")
    y = np.array([c for _, c in files], np.int64)
    return inputs(root, "images", (x - mean) / std), labels(root, "class folders", y, len(x)), None, None, "image"


def inputs(path, name: str, x: np.ndarray) -> np.ndarray:
    """Per-sample inputs: floating point becomes float32; integers and booleans keep their dtype."""
    if x.ndim < 2 or len(x) == 0:
        raise UsageError(f"{path}: `{name}` must be (N, features...) with N > 0, got shape {x.shape}",
                         "store one sample per row")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise UsageError(f"{path}: `{name}` must be numeric, got dtype {x.dtype}", "convert it to float32")
    if not np.issubdtype(x.dtype, np.floating):
        return x
    x = x.astype(np.float32, copy=False)  # a float32 memory map stays one
    bad = sum(int((~np.isfinite(c)).reshape(len(c), -1).any(axis=1).sum()) for c in _chunks(x))
    if bad:
        raise UsageError(f"{path}: `{name}` holds NaN or inf in {bad} sample(s)",
                         "drop or impute those samples before distilling")
    return x


CHUNK = 4096  # samples checked at a time


def _chunks(x: np.ndarray):
    """`x` CHUNK samples at a time; a memory map is read from its file into one reused buffer, so checking a
    file larger than memory does not make it resident."""
    if not isinstance(x, np.memmap) or x.filename is None:
        yield from (x[i:i + CHUNK] for i in range(0, len(x), CHUNK))
        return
    row = int(np.prod(x.shape[1:]))
    with open(x.filename, "rb") as f:
        f.seek(x.offset)
        for i in range(0, len(x), CHUNK):
            n = min(CHUNK, len(x) - i)
            yield np.fromfile(f, dtype=x.dtype, count=n * row).reshape(n, *x.shape[1:])


def labels(path, name: str, y: np.ndarray, n: int, check_classes: bool = True) -> np.ndarray:
    if y.ndim != 1 or len(y) != n:
        raise UsageError(f"{path}: `{name}` must be a 1-D array of {n} labels, got shape {y.shape}",
                         "give one integer class id per sample")
    if y.dtype == np.bool_:  # a binary task saved as booleans
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and (y == np.round(y)).all():
            y = y.astype(np.int64)
        else:
            raise UsageError(f"{path}: `{name}` must hold integer class ids, got dtype {y.dtype}",
                             "map labels to 0..C-1")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise UsageError(f"{path}: `{name}` has negative label {int(y.min())}; expected 0..C-1",
                         "map labels to 0..C-1 (leave unlabeled samples out of `y` and pass them with --unlabeled)")
    if check_classes and len(np.unique(y)) < 2:
        raise UsageError(f"{path}: `{name}` has a single class ({int(y[0])}); a classifier needs at least 2",
                         "add samples of the other classes")
    return y
