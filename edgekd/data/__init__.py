"""Data sets as numpy arrays, from a SPEC: `digits`, `.npz`, `.npy`, `.csv`, or an image folder.

Data flows one way: a SPEC becomes a `Dataset` of inputs and int64 labels (-1 where a sample has no label:
the teacher supplies its target) with a fixed, seeded train/val/test split. Inputs are one array (`x`) or,
for models with several inputs, arrays named after the inputs (`input_ids`, `attention_mask`, ...), dtypes
kept (token ids stay int64; floating point becomes float32); arrays without the sample axis are constants
(a sample rate, an initial state). Everything downstream (training, calibration, accuracy) reads these.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError

TEST_FRACTION = 0.2
SPLIT_SEED = 0  # the split is fixed, so teachers and students are always scored on the same test set
UNLABELED = -1


@dataclass
class DataOptions:
    """How to read a SPEC; the defaults suit the built-in demo."""

    val_split: float = 0.0          # share of the training part held out for validation / early stopping
    label_column: str = "label"     # CSV
    image_size: int | None = None   # image folders: resize to SIZE x SIZE (default: the first image's size)
    channels: int = 3               # image folders: 1 (grayscale) or 3 (RGB)
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    unlabeled: str | None = None    # extra inputs with no labels (a transfer set): the teacher labels them
    text_column: str = "text"       # text data (.csv/.jsonl/datasets): the column holding the texts
    text_pair_column: str | None = None  # ... and the second text of a pair
    max_length: int = 128           # text data: tokens per text at most (longer ones are truncated, counted)
    encoding: str = "utf-8"         # text and CSV files: their encoding (a wrong guess is named with the fix)


Inputs = np.ndarray | dict  # one array, or {input name: array}, samples on axis 0


def n_samples(x: Inputs) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def take(x: Inputs, idx) -> Inputs:
    """Samples `idx` (slice or index array) of one array or of every named array."""
    return {k: v[idx] for k, v in x.items()} if isinstance(x, dict) else x[idx]


def concat(parts: list[Inputs]) -> Inputs:
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


def arrays(x: Inputs, name: str = "x") -> dict[str, np.ndarray]:
    """Named arrays as `bind` takes them (a single array is `x`, or the name it had in its file)."""
    return dict(x) if isinstance(x, dict) else {name: x}


@dataclass
class Dataset:
    """x is (N, *input_shape) or {name: (N, ...)}; y is (N,) int64 class ids, -1 for unlabeled samples;
    constants are arrays without the sample axis, fed as they are."""

    spec: str
    x_train: Inputs
    y_train: np.ndarray
    x_test: Inputs
    y_test: np.ndarray | None
    num_classes: int | None
    x_val: Inputs | None = None
    y_val: np.ndarray | None = None
    kind: str = "array"             # array | image (augmentation applies to images only)
    notes: list[str] = field(default_factory=list)
    constants: dict = field(default_factory=dict)
    x_name: str = "x"               # a single input's name in the file (an .npz saved as pixels=...)

    @property
    def input_names(self) -> list[str] | None:
        return list(self.x_train) if isinstance(self.x_train, dict) else None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape (of the first input when there are several)."""
        first = next(iter(self.x_train.values())) if isinstance(self.x_train, dict) else self.x_train
        return tuple(int(d) for d in first.shape[1:])

    def test_arrays(self) -> dict[str, np.ndarray]:
        return {**arrays(self.x_test, self.x_name), **self.constants}

    def train_arrays(self) -> dict[str, np.ndarray]:
        return {**arrays(self.x_train, self.x_name), **self.constants}

    @property
    def labeled_fraction(self) -> float:
        return float((self.y_train != UNLABELED).mean()) if len(self.y_train) else 0.0

    def summary(self) -> dict:
        out = {"spec": self.spec, "train": n_samples(self.x_train),
               "val": 0 if self.x_val is None else n_samples(self.x_val), "test": n_samples(self.x_test),
               "labeled_fraction": round(self.labeled_fraction, 4), "input_shape": list(self.input_shape),
               "num_classes": self.num_classes, "kind": self.kind}
        if self.input_names:
            out["inputs"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape[1:])} for k, v in self.x_train.items()}
        if self.constants:
            out["constants"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in self.constants.items()}
        return out


def load(spec: str, options: DataOptions | None = None, codec=None) -> Dataset:
    """Load a data SPEC into a split Dataset (see README: Data SPEC). `codec` (a `text.TextCodec`: the
    teacher's tokenizer and labels) reads text data."""
    from . import readers

    opts = options or DataOptions()
    if not 0.0 <= opts.val_split < 0.9:
        raise UsageError(f"--val-split must be in [0, 0.9), got {opts.val_split}", "e.g. --val-split 0.1")
    r = readers.read(spec, opts, codec=codec)
    ds = _split(spec, r.x, r.y, r.x_test, r.y_test, r.kind)
    ds.constants, ds.x_name = r.constants, r.x_name
    ds.notes.extend(r.notes)
    if opts.unlabeled:
        ur = readers.read(opts.unlabeled, opts, want_labels=False, codec=codec)
        xu = ur.x
        if ur.kind == "text":
            xu = _pad_like(xu, ds.x_train, opts.unlabeled)
        if _shapes(xu) != _shapes(ds.x_train):
            raise UsageError(f"--unlabeled {opts.unlabeled} has samples of shape {_shapes(xu)} but --data has "
                             f"{_shapes(ds.x_train)}", "give the transfer set the same inputs and shapes")
        ds.x_train = concat([ds.x_train, xu])
        ds.y_train = np.concatenate([ds.y_train, np.full(n_samples(xu), UNLABELED, np.int64)])
        ds.notes.append(f"{n_samples(xu)} unlabeled transfer samples from {opts.unlabeled}: the teacher labels them")
    if opts.val_split > 0:
        _hold_out_val(ds, opts.val_split)
    if n_samples(ds.x_train) == 0:  # a one-sample file: the test split took it
        total = n_samples(ds.x_test) + (0 if ds.x_val is None else n_samples(ds.x_val))
        raise UsageError(f"{spec} has {total} sample{'s' if total != 1 else ''}: the test (and validation) split "
                         f"took {'it' if total == 1 else 'them'} and none is left to train on",
                         f"give it more samples ({TEST_FRACTION:.0%} are held out for the test), or put the test "
                         "samples apart (x_test in an .npz)")
    return ds


def _pad_like(x: dict, like: dict, spec: str) -> dict:
    """Token arrays of a transfer set padded (or cut: they were tokenised to the same max length) to the
    training set's width, so both concatenate."""
    width = next(iter(like.values())).shape[1]
    if set(x) != set(like):
        raise UsageError(f"--unlabeled {spec} gives inputs {sorted(x)} but --data {sorted(like)}",
                         "tokenise both with the same teacher")
    out = {}
    for k, v in x.items():
        if v.shape[1] >= width:
            out[k] = v[:, :width]
        else:
            out[k] = np.pad(v, ((0, 0), (0, width - v.shape[1])), constant_values=0)
    return out


def _shapes(x: Inputs):
    if isinstance(x, dict):
        return {k: tuple(v.shape[1:]) for k, v in x.items()}
    return tuple(x.shape[1:])


def _split(spec, x, y, x_test, y_test, kind) -> Dataset:
    labeled = (y != UNLABELED).all()
    n_classes = int(y.max()) + 1 if (y != UNLABELED).any() else None
    if x_test is not None:
        if y_test is not None and n_classes is not None:
            n_classes = max(n_classes, int(y_test.max()) + 1)
        return Dataset(spec, x, y, x_test, y_test, n_classes, kind=kind)
    if isinstance(x, np.memmap) and not labeled:  # a memory-mapped .npy: the last fifth is the test split,
        n_test = max(1, int(np.ceil(len(y) * TEST_FRACTION)))  # as slices, so nothing is copied
        return Dataset(spec, x[:len(y) - n_test], y[:len(y) - n_test], x[len(y) - n_test:], None, n_classes,
                       kind=kind)
    tr, te = split_indices(y, labeled)  # the data brings no test split
    return Dataset(spec, take(x, tr), y[tr], take(x, te), y[te] if labeled else None, n_classes, kind=kind)


def split_indices(y: np.ndarray, labeled: bool) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: a seeded shuffle, stratified by class when every class has two samples or more
    (each then keeps at least one on each side). numpy only, so a runtime install splits data as training does."""
    fraction, rng = TEST_FRACTION, np.random.default_rng(SPLIT_SEED)
    counts = np.bincount(y) if labeled else np.array([])
    if labeled and counts[counts > 0].min() >= 2 and len(y) * fraction >= (counts > 0).sum():
        test = []
        for c in np.flatnonzero(counts):
            idx = rng.permutation(np.flatnonzero(y == c))
            test.append(idx[:min(len(idx) - 1, max(1, int(round(len(idx) * fraction))))])
        te = np.sort(np.concatenate(test))
    else:
        te = np.sort(rng.permutation(len(y))[:max(1, int(np.ceil(len(y) * fraction)))])
    return np.setdiff1d(np.arange(len(y)), te), te


def _hold_out_val(ds: Dataset, fraction: float) -> None:
    rng = np.random.default_rng(SPLIT_SEED)
    order = rng.permutation(n_samples(ds.x_train))
    n_val = max(1, int(round(len(order) * fraction)))
    val, train = order[:n_val], order[n_val:]
    ds.x_val, ds.y_val = take(ds.x_train, val), ds.y_train[val]
    ds.x_train, ds.y_train = take(ds.x_train, train), ds.y_train[train]
