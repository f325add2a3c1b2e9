"""Data sets as numpy arrays, from a SPEC: `digits`, `.npz`, `.npy`, `.csv`, or an image folder.

Data flows one way: a SPEC becomes a `Dataset` of float32 inputs and int64 labels (-1 where a sample has
no label: the teacher supplies its target) with a fixed, seeded train/val/test split. Everything downstream
(training, calibration, accuracy) reads these arrays.
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


@dataclass
class Dataset:
    """x is (N, *input_shape) float32; y is (N,) int64 class ids, -1 for unlabeled samples."""

    spec: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray | None
    num_classes: int | None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    kind: str = "array"             # array | image (augmentation applies to images only)
    notes: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def labeled_fraction(self) -> float:
        return float((self.y_train != UNLABELED).mean()) if len(self.y_train) else 0.0

    def summary(self) -> dict:
        return {"spec": self.spec, "train": len(self.x_train), "val": 0 if self.x_val is None else len(self.x_val),
                "test": len(self.x_test), "labeled_fraction": round(self.labeled_fraction, 4),
                "input_shape": list(self.input_shape), "num_classes": self.num_classes, "kind": self.kind}


def load(spec: str, options: DataOptions | None = None) -> Dataset:
    """Load a data SPEC into a split Dataset (see README: Data SPEC)."""
    from . import readers

    opts = options or DataOptions()
    if not 0.0 <= opts.val_split < 0.9:
        raise UsageError(f"--val-split must be in [0, 0.9), got {opts.val_split}", "e.g. --val-split 0.1")
    x, y, x_test, y_test, kind = readers.read(spec, opts)
    ds = _split(spec, x, y, x_test, y_test, kind)
    if opts.unlabeled:
        xu, _, _, _, _ = readers.read(opts.unlabeled, opts, want_labels=False)
        if xu.shape[1:] != ds.x_train.shape[1:]:
            raise UsageError(f"--unlabeled {opts.unlabeled} has samples of shape {xu.shape[1:]} but --data has "
                             f"{ds.x_train.shape[1:]}", "give the transfer set the same input shape")
        ds.x_train = np.concatenate([ds.x_train, xu])
        ds.y_train = np.concatenate([ds.y_train, np.full(len(xu), UNLABELED, np.int64)])
        ds.notes.append(f"{len(xu)} unlabeled transfer samples from {opts.unlabeled}: the teacher labels them")
    if opts.val_split > 0:
        _hold_out_val(ds, opts.val_split)
    return ds


def _split(spec, x, y, x_test, y_test, kind) -> Dataset:
    from sklearn.model_selection import train_test_split

    labeled = (y != UNLABELED).all()
    n_classes = int(y.max()) + 1 if (y != UNLABELED).any() else None
    if x_test is not None:
        if y_test is not None and n_classes is not None:
            n_classes = max(n_classes, int(y_test.max()) + 1)
        return Dataset(spec, x, y, x_test, y_test, n_classes, kind=kind)
    stratify = None
    if labeled:
        counts = np.bincount(y)
        if counts[counts > 0].min() >= 2 and len(y) * TEST_FRACTION >= len(counts):
            stratify = y
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=stratify)
    return Dataset(spec, xtr, ytr, xte, yte if labeled else None, n_classes, kind=kind)


def _hold_out_val(ds: Dataset, fraction: float) -> None:
    rng = np.random.default_rng(SPLIT_SEED)
    order = rng.permutation(len(ds.x_train))
    n_val = max(1, int(round(len(order) * fraction)))
    val, train = order[:n_val], order[n_val:]
    ds.x_val, ds.y_val = ds.x_train[val], ds.y_train[val]
    ds.x_train, ds.y_train = ds.x_train[train], ds.y_train[train]
