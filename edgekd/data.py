"""Data sets as numpy arrays: the built-in `digits` demo and `.npz` files.

Data flows one way: a SPEC string becomes a `Dataset` of float32 inputs and int64 labels with a fixed,
seeded train/test split. Everything downstream (training, calibration, accuracy) reads these arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UsageError

TEST_FRACTION = 0.2
SPLIT_SEED = 0  # the split is fixed, so teachers and students are always scored on the same test set


@dataclass
class Dataset:
    """Train and test arrays; `x` is (N, *input_shape) float32, `y` is (N,) int64 class ids."""

    spec: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def summary(self) -> dict:
        return {"spec": self.spec, "train": len(self.x_train), "test": len(self.x_test),
                "input_shape": list(self.input_shape), "num_classes": self.num_classes}


def load(spec: str) -> Dataset:
    """Load a data SPEC: `digits` or a path to an `.npz` file with arrays `x` and `y`."""
    if spec == "digits":
        return _digits()
    path = Path(spec)
    if path.suffix == ".npz":
        return _npz(path)
    raise UsageError(f"unknown data spec {spec!r}: expected `digits` or a path to an .npz file",
                     "pass --data digits, or --data file.npz holding arrays `x` and `y`")


def _digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (no download): images scaled to [0, 1], shape (N, 1, 8, 8)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    return _split("digits", x, y)


def _npz(path: Path) -> Dataset:
    if not path.is_file():
        raise UsageError(f"data file {path} does not exist", "check the path passed to --data")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # a truncated or non-npz file
        raise UsageError(f"{path} is not a readable .npz file ({type(e).__name__}: {e})",
                         "write it with numpy.savez(path, x=..., y=...)") from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise UsageError(f"{path} has no array {' or '.join(repr(k) for k in missing)} "
                         f"(found: {', '.join(sorted(arrays)) or 'nothing'})",
                         "save inputs as `x` and integer labels as `y`: numpy.savez(path, x=x, y=y)")
    x, y = _validated(path, "x", arrays["x"], "y", arrays["y"])
    if "x_test" in arrays and "y_test" in arrays:
        xt, yt = _validated(path, "x_test", arrays["x_test"], "y_test", arrays["y_test"])
        if xt.shape[1:] != x.shape[1:]:
            raise UsageError(f"{path}: x_test has shape {xt.shape[1:]} per sample but x has {x.shape[1:]}",
                             "give train and test inputs the same shape")
        n = int(max(y.max(), yt.max())) + 1
        return Dataset(str(path), x, y, xt, yt, n)
    return _split(str(path), x, y)


def _validated(path: Path, xk: str, x: np.ndarray, yk: str, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.ndim < 2 or len(x) == 0:
        raise UsageError(f"{path}: `{xk}` must be (N, features...) with N > 0, got shape {x.shape}",
                         "store one sample per row")
    if not np.issubdtype(x.dtype, np.number):
        raise UsageError(f"{path}: `{xk}` must be numeric, got dtype {x.dtype}", "convert it to float32")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise UsageError(f"{path}: `{xk}` holds NaN or inf in {bad} sample(s)",
                         "drop or impute those samples before distilling")
    if y.ndim != 1 or len(y) != len(x):
        raise UsageError(f"{path}: `{yk}` must be a 1-D array of {len(x)} labels, got shape {y.shape}",
                         f"give one integer class id per row of `{xk}`")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise UsageError(f"{path}: `{yk}` must hold integer class ids, got dtype {y.dtype}",
                             "map labels to 0..C-1")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise UsageError(f"{path}: `{yk}` has negative label {int(y.min())}; expected 0..C-1",
                         "map labels to 0..C-1")
    if len(np.unique(y)) < 2 and yk == "y":
        raise UsageError(f"{path}: `{yk}` has a single class ({int(y[0])}); a classifier needs at least 2",
                         "add samples of the other classes")
    return x, y


def _split(spec: str, x: np.ndarray, y: np.ndarray) -> Dataset:
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 and len(y) * TEST_FRACTION >= len(counts) else None
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED,
                                          stratify=stratify)
    return Dataset(spec, xtr, ytr, xte, yte, int(y.max()) + 1)
