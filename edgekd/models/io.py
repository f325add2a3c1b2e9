"""The model I/O contract: what a model takes and returns, read once and used by every step.

Real models take several inputs (token ids and masks, a recurrent state, a scalar sample rate), fix their
batch at 1 or leave height and width symbolic, and return several outputs (boxes and scores in one tensor, a
segmentation map, a new state). `ModelIO` says all of that in one object: it is read from an ONNX file (or a
PyTorch model and an example batch), stored in the run's manifest, and decides how data is bound to inputs
(`bind`), how batches are cut for a fixed batch (`batches`), and which output is scored (`primary`).

Needs only numpy (and onnx for `from_onnx`), so the runtime side runs on a device without torch.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError

Dim = int | str  # a fixed size, or a symbolic name ("batch", "height")

# ONNX TensorProto element types -> numpy dtype names
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
                10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}
OUTPUT_KINDS = ("logits", "token_logits", "embedding", "dense", "boxes", "state", "other")
_STATE = re.compile(r"(^|[_.\-])(state|hidden|cell|hn|cn|h|c|past|present|cache)([_.\-]|\d|$)", re.I)
_EMBED = re.compile(r"embed|pooler|sentence|last_hidden|features?$", re.I)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: name, numpy dtype name, shape (ints fixed, strings symbolic), and for outputs
    what it holds (one of OUTPUT_KINDS)."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    kind: str = ""

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def symbolic(self) -> list[int]:
        """Axes whose size is not fixed."""
        return [i for i, d in enumerate(self.shape) if not isinstance(d, int)]

    def shape_str(self) -> str:
        return "(" + ", ".join(str(d) for d in self.shape) + ")"

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "kind": self.kind}


@dataclass(frozen=True)
class ModelIO:
    """A model's inputs and outputs. `batch` is None when axis 0 is symbolic (any batch), else the fixed batch
    size the model was exported with (edgekd then feeds it that many samples at a time)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batch: int | None = None

    # ------------------------------------------------------------ reading

    @classmethod
    def from_onnx(cls, model_or_path) -> ModelIO:
        """Read the graph's inputs (initializers excluded) and outputs."""
        import onnx

        model = model_or_path if isinstance(model_or_path, onnx.ModelProto) else \
            onnx.load(str(model_or_path), load_external_data=False)
        inits = {i.name for i in model.graph.initializer}
        ins = tuple(_spec(v) for v in model.graph.input if v.name not in inits)
        outs = tuple(_spec(v) for v in model.graph.output)
        io = cls(ins, _with_kinds(outs), _fixed_batch(ins))
        carried = {o for _, o in io.recurrent()}  # an output that feeds an input next call is a state
        return cls(ins, tuple(TensorSpec(t.name, t.dtype, t.shape, "state") if t.name in carried else t
                              for t in io.outputs), io.batch)

    @classmethod
    def from_arrays(cls, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
                    batched: set[str] | None = None) -> ModelIO:
        """From an example batch and the model's outputs on it (PyTorch models): the sample axis of every
        batched input and of every output is symbolic ("batch"); the other dims are as seen."""
        batched = set(inputs) if batched is None else batched

        def spec(name, a, is_batched):
            a = np.asarray(a)
            shape = (("batch", *a.shape[1:]) if is_batched and a.ndim else tuple(a.shape))
            return TensorSpec(name, str(a.dtype), tuple(int(d) if isinstance(d, (int, np.integer)) else d
                                                        for d in shape))
        ins = tuple(spec(n, a, n in batched) for n, a in inputs.items())
        outs = tuple(spec(n, a, np.asarray(a).ndim > 0) for n, a in outputs.items())
        return cls(ins, _with_kinds(outs), None)

    @classmethod
    def from_dict(cls, d: dict) -> ModelIO:
        def spec(x):
            return TensorSpec(x["name"], x["dtype"], tuple(x["shape"]), x.get("kind", ""))
        return cls(tuple(spec(x) for x in d["inputs"]), _with_kinds(tuple(spec(x) for x in d["outputs"])),
                   d.get("batch"))

    def to_dict(self) -> dict:
        return {"inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs],
                "batch": self.batch}

    # ------------------------------------------------------------ looking up

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def input(self, name: str) -> TensorSpec:
        for t in self.inputs:
            if t.name == name:
                return t
        raise KeyError(name)

    def output_index(self, name: str | None = None) -> int:
        """Index of the output to score: `name`, else `logits`, else the first class-logits output, else 0."""
        names = self.output_names
        if name is not None:
            if name not in names:
                raise UsageError(f"--output {name!r} is not an output of the model (outputs: {', '.join(names)})",
                                 "pass one of those names to --output")
            return names.index(name)
        if "logits" in names:
            return names.index("logits")
        return next((i for i, t in enumerate(self.outputs) if t.kind == "logits"), 0)

    def primary(self, name: str | None = None) -> TensorSpec:
        return self.outputs[self.output_index(name)]

    def describe(self) -> str:
        """`input_ids int64 (batch, 128), attention_mask int64 (batch, 128) -> logits float32 (batch, 2)`."""
        def fmt(ts):
            return ", ".join(f"{t.name} {t.dtype} {t.shape_str()}" for t in ts)
        return f"{fmt(self.inputs)} -> {fmt(self.outputs)}"

    @property
    def batch_symbol(self) -> str | None:
        """The name of the samples axis: the symbol axis 0 of most inputs and outputs share (`batch`). An input
        that has it at another axis (a recurrent state `[layers, batch, hidden]`) is batched along that axis."""
        firsts = [t.shape[0] for t in (*self.inputs, *self.outputs) if t.rank and isinstance(t.shape[0], str)]
        return max(dict.fromkeys(firsts), key=firsts.count) if firsts else None

    def batch_axis(self, t: TensorSpec) -> int | None:
        """Where `t`'s samples are: the axis holding the batch symbol, else axis 0 when it is symbolic or the
        model's fixed batch; None for an input fed as it is (a scalar, a fixed table)."""
        if t.rank == 0:
            return None
        sym = self.batch_symbol
        if sym is not None and sym in t.shape:
            return t.shape.index(sym)
        if isinstance(t.shape[0], str) or (self.batch is not None and t.rank >= 2 and t.shape[0] == self.batch):
            return 0
        return None

    def has_batch_axis(self, t: TensorSpec) -> bool:
        return self.batch_axis(t) is not None

    def recurrent(self) -> list[tuple[str, str]]:
        """(input, output) pairs where an output carries a state to the next call: an output of the same
        shape named after the input (`state` -> `stateN`, `h0` -> `hn`, `past` -> `present`) that is a state."""
        pairs = []
        for t in self.inputs:
            if t.rank == 0 or not _STATE.search(t.name):
                continue
            stem = re.sub(r"(_?in(put)?|0|_?prev(ious)?)$", "", t.name.lower())
            for o in self.outputs:
                name = o.name.lower()
                if o.shape == t.shape and o.name != t.name and (name.startswith(stem) or (stem, name) in
                                                                 (("past", "present"),)):
                    pairs.append((t.name, o.name))
                    break
        return pairs

    def observed(self, outputs: dict[str, np.ndarray]) -> ModelIO:
        """Output kinds re-read from outputs seen on a real run: a symbolic dim (a concatenation's, say) hides
        what an output holds until its size is known."""
        def seen(t: TensorSpec) -> TensorSpec:
            if t.name not in outputs or not t.symbolic[1:] or np.ndim(outputs[t.name]) != t.rank:
                return t
            shape = (t.shape[0], *(int(d) for d in np.shape(outputs[t.name])[1:]))
            return TensorSpec(t.name, t.dtype, t.shape, _kind(TensorSpec(t.name, t.dtype, shape)))
        return ModelIO(self.inputs, tuple(seen(t) for t in self.outputs), self.batch)

    def check_shapes(self, shapes: dict[str, list[int]]) -> None:
        """`--shape NAME=...` must name an input and give it its rank and fixed dims."""
        for name, shape in shapes.items():
            if name not in self.input_names:
                raise UsageError(f"--shape names input {name!r}, which the model does not have "
                                 f"(inputs: {', '.join(self.input_names)})", "use one of the model's input names")
            t = self.input(name)
            if len(shape) != t.rank or any(isinstance(d, int) and d != s for d, s in zip(t.shape, shape)):
                raise UsageError(f"--shape {name}={'x'.join(map(str, shape))} does not fit input {name} "
                                 f"{t.shape_str()}", f"give {t.rank} dims, keeping the fixed ones")


def _spec(value_info) -> TensorSpec:
    tt = value_info.type.tensor_type
    dims: list[Dim] = []
    for i, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or f"dim{i}")
    return TensorSpec(value_info.name, _ONNX_DTYPES.get(tt.elem_type, "float32"), tuple(dims))


def _fixed_batch(inputs: tuple[TensorSpec, ...]) -> int | None:
    """The fixed batch: axis 0 of the rank >= 2 inputs when every one of them fixes it (1 for most)."""
    firsts = [t.shape[0] for t in inputs if t.rank >= 2]
    if firsts and all(isinstance(d, int) for d in firsts) and len(set(firsts)) == 1:
        return int(firsts[0])
    return None


def _kind(t: TensorSpec) -> str:
    """What an output holds, from its name and shape (a guess that a user can override with --output)."""
    name = t.name.lower()
    if _STATE.search(name) and not _EMBED.search(name) and "logit" not in name:
        return "state"
    if "box" in name or "det" in name or "bbox" in name:
        return "boxes"
    if t.rank == 2 and t.shape[1] == 1:
        return "other"  # one score per sample (a probability, a regression value)
    if t.rank == 2:
        return "embedding" if _EMBED.search(name) else "logits"
    if t.rank == 3:  # (N, 4 + classes, anchors) as YOLO exports it, or (N, anchors, 4 + classes)
        if "logit" in name and not _looks_like_boxes(t.shape):
            return "token_logits"  # (N, sequence, classes): a token classifier
        return "boxes" if _looks_like_boxes(t.shape) else ("embedding" if _EMBED.search(name) else "dense")
    if t.rank >= 4:
        return "dense"
    return "other"


def _looks_like_boxes(shape: tuple[Dim, ...]) -> bool:
    fixed = [d for d in shape[1:] if isinstance(d, int)]
    return len(fixed) == 2 and min(fixed) >= 5 and max(fixed) >= 8 * min(fixed)


def _with_kinds(outputs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(t.name, t.dtype, t.shape, t.kind or _kind(t)) for t in outputs)


# ---------------------------------------------------------------- binding data to inputs

@dataclass
class Feeds:
    """Data bound to a model's inputs: per-sample arrays (sample axis first) and constants fed as they are
    (a sample rate, an initial recurrent state). `generated` names inputs edgekd made up values for."""

    samples: dict[str, np.ndarray]
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    generated: list[str] = field(default_factory=list)
    axes: dict[str, int] = field(default_factory=dict)  # where the model takes the samples of an input, when not 0

    def __len__(self) -> int:
        return len(next(iter(self.samples.values()))) if self.samples else 1

    def take(self, idx) -> Feeds:
        """Samples `idx` (a slice or an index array); constants unchanged."""
        return Feeds({k: v[idx] for k, v in self.samples.items()}, self.constants, self.generated, self.axes)

    def feed(self, idx) -> dict[str, np.ndarray]:
        """The feed dict of samples `idx`: each input's samples put on the axis the model takes them on (axis 1
        of a `[layers, batch, hidden]` state), and the constants."""
        part = {k: v[idx] for k, v in self.samples.items()}
        return {**{k: np.ascontiguousarray(np.moveaxis(v, 0, self.axes[k])) if self.axes.get(k) else v
                   for k, v in part.items()}, **self.constants}

    def shapes(self) -> dict[str, list[int]]:
        """The concrete shape of one sample of every input (the timing and memory runs use these)."""
        out = {k: list(v.shape[1:]) for k, v in self.samples.items()}
        out.update({k: list(v.shape) for k, v in self.constants.items()})
        return out

    def batch_shapes(self, batch: int = 1) -> dict[str, list[int]]:
        """The shape of every input in a feed of `batch` samples, the batch on the input's own axis."""
        out = {}
        for k, v in self.samples.items():
            shape = [batch, *v.shape[1:]]
            ax = self.axes.get(k, 0)
            out[k] = shape[1:ax + 1] + [batch] + shape[ax + 1:] if ax else shape
        out.update({k: list(v.shape) for k, v in self.constants.items()})
        return out


def _np_dtype(name: str):
    return np.dtype("float32" if name == "bfloat16" else name)


def bind(io: ModelIO, arrays: dict[str, np.ndarray], *, shapes: dict[str, list[int]] | None = None,
         source: str = "--data", generate: int = 64, seed: int = 0, complete: bool = False) -> Feeds:
    """Match named arrays to the model's inputs, with dtypes and shapes checked per input.

    An array holding the input's full rank is per-sample data (axis 0 the samples); one of rank - 1 on a
    model with a batch axis is a per-sample constant (it gets the batch axis added); a rank-0 input, or an
    array that equals a fully fixed input's shape, is a constant. A single unnamed array (`x`) feeds a
    single-input model. Inputs without data get generated values of the right dtype and shape (`generated`
    says which; with `complete`, data was given and a missing input is an error); a symbolic dim they need
    comes from `shapes` (`--shape NAME=1x3x320x320`)."""
    shapes = shapes or {}
    io.check_shapes(shapes)
    arrays = dict(arrays)
    if len(io.inputs) == 1 and io.inputs[0].name not in arrays and len(arrays) == 1:
        arrays = {io.inputs[0].name: next(iter(arrays.values()))}  # one array feeds the one input
    extra = sorted(set(arrays) - set(io.input_names))
    if extra:
        raise UsageError(f"{source}: array {extra[0]!r} is not an input of the model "
                         f"(inputs: {', '.join(io.input_names)})",
                         "name each array after the model input it feeds (labels are `y`)")
    samples: dict[str, np.ndarray] = {}
    constants: dict[str, np.ndarray] = {}
    shared: dict[str, np.ndarray] = {}
    axes: dict[str, int] = {}
    for t in io.inputs:
        if t.name not in arrays:
            continue
        a = np.asarray(arrays[t.name])
        _check_dtype(t, a, source)
        a = a.astype(_np_dtype(t.dtype), copy=False)
        ax = io.batch_axis(t)
        if ax:  # the samples are on another axis: held sample-first here, put back there in every feed
            axes[t.name] = ax
            t_first = TensorSpec(t.name, t.dtype, (t.shape[ax], *t.shape[:ax], *t.shape[ax + 1:]), t.kind)
            if a.ndim == t.rank:
                a = np.moveaxis(a, ax, 0)
                if len(a) == 1 and t.symbolic:  # one sample's state (`state (2, 1, 128)`): every sample starts there
                    a = a[0]
            t = t_first
        per_sample = ax is not None and a.ndim == t.rank and not (not t.symbolic and a.shape == t.shape)
        if per_sample:
            _check_dims(t, a.shape[1:], t.shape[1:], source, _first(shapes.get(t.name), ax, t.rank)[1:])
            samples[t.name] = a
        elif ax is not None and a.ndim == t.rank - 1:  # the same for every sample
            _check_dims(t, a.shape, t.shape[1:], source, _first(shapes.get(t.name), ax, t.rank)[1:])
            shared[t.name] = a
        elif a.ndim == t.rank:
            _check_dims(t, a.shape, t.shape, source, shapes.get(t.name, [None] * t.rank))
            constants[t.name] = a
        else:
            raise UsageError(f"{source}: input {t.name} expects {t.shape_str()} ({t.rank} dims, samples first), "
                             f"got an array of shape {tuple(a.shape)}", f"reshape {t.name!r} to fit the model")
    lengths = {k: len(v) for k, v in samples.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k} {n}" for k, n in lengths.items())
        raise UsageError(f"{source}: inputs have different numbers of samples ({detail})",
                         "give every per-sample input the same number of samples")
    n = next(iter(lengths.values()), generate)
    samples.update({k: np.broadcast_to(v, (n, *v.shape)) for k, v in shared.items()})
    generated = [t.name for t in io.inputs if t.name not in samples and t.name not in constants]
    if complete and generated:  # data was given: a missing input is a mistake, not something to make up
        raise UsageError(f"{source} has no array for input {generated[0]!r} (the model's inputs: "
                         f"{', '.join(f'{t.name} {t.dtype} {t.shape_str()}' for t in io.inputs)})",
                         f"add {generated[0]!r} to the .npz, or leave --data out to run on generated inputs")
    rng = np.random.default_rng(seed)
    for name in generated:
        t = io.input(name)
        shape = _concrete(t, shapes.get(name), samples, io, shapes)
        ax = io.batch_axis(t)
        if ax is not None:
            rest = shape[:ax] + shape[ax + 1:]
            samples[name] = dummy(t.dtype, [n, *rest], rng, name)
            if ax:
                axes[name] = ax
        else:
            constants[name] = dummy(t.dtype, shape, rng, name)
    return Feeds(samples, constants, generated, axes)


def _first(shape: list[int] | None, ax: int | None, rank: int) -> list:
    """A --shape given in the model's order, with the samples axis moved first (as bind holds the data)."""
    if not shape:
        return [None] * rank
    if not ax:
        return list(shape)
    return [shape[ax], *shape[:ax], *shape[ax + 1:]]


def _check_dtype(t: TensorSpec, a: np.ndarray, source: str) -> None:
    want = _np_dtype(t.dtype)
    ok = (a.dtype == want or (np.issubdtype(want, np.floating) and np.issubdtype(a.dtype, np.number))
          or (np.issubdtype(want, np.integer) and np.issubdtype(a.dtype, np.integer))
          or (want == np.bool_ and (a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer))))
    if not ok:
        raise UsageError(f"{source}: input {t.name} expects {t.dtype}, got an array of dtype {a.dtype}",
                         f"save {t.name!r} as {t.dtype} (token ids are integers; features are floats)")
    if np.issubdtype(a.dtype, np.floating) and a.size and not np.isfinite(a).all():
        raise UsageError(f"{source}: input {t.name} holds NaN or inf", "drop or impute those samples")


def _check_dims(t: TensorSpec, got, want, source: str, override) -> None:
    for i, (g, w) in enumerate(zip(got, want)):
        fixed = w if isinstance(w, int) else (override[i] if i < len(override) else None)
        if fixed is not None and int(g) != int(fixed):
            raise UsageError(f"{source}: input {t.name} expects {t.shape_str()} per batch, got samples of shape "
                             f"{tuple(int(x) for x in got)}", f"resize {t.name!r} to the model's fixed dims")


def _concrete(t: TensorSpec, override: list[int] | None, samples: dict[str, np.ndarray], io: ModelIO,
              shapes: dict[str, list[int]]) -> list[int]:
    """A concrete shape for an input without data: --shape, else fixed dims, else a symbolic dim's size in
    another input that shares its name, else 1 for the batch axis. A spatial dim with no size is an error."""
    if override:
        return list(override)
    known: dict[str, int] = {}
    for other in io.inputs:
        if other.name in samples:
            ax = io.batch_axis(other) or 0
            rest = other.shape[:ax] + other.shape[ax + 1:]
            for d, size in zip(rest, samples[other.name].shape[1:]):
                if isinstance(d, str):
                    known[d] = int(size)
        if other.name in shapes:
            known.update({d: int(size) for d, size in zip(other.shape, shapes[other.name]) if isinstance(d, str)})
    out = []
    ax = io.batch_axis(t)
    for i, d in enumerate(t.shape):
        if isinstance(d, int):
            out.append(d)
        elif d in known:
            out.append(known[d])
        elif i == (0 if ax is None else ax):
            out.append(1)
        else:
            example = "x".join(str(x) if isinstance(x, int) else ("1" if j == 0 else "N")
                               for j, x in enumerate(t.shape))
            raise UsageError(f"input {t.name} {t.shape_str()} has a symbolic dimension {d!r} and no data to "
                             "size it", f"pass --shape {t.name}={example} with numbers, or give {t.name!r} in --data")
    return out


ASK_ABOVE_BYTES = 1 << 30  # allocations below 1 GiB are not worth asking the OS about


def _affordable(name: str, shape: list[int], np_type) -> None:
    """An input the graph declares as 2^40 wide is an error naming that dim, not numpy's `Unable to allocate
    512 TiB` (generated floats pass through float64: 8 bytes each)."""
    from ..resources import require_memory

    n = int(np.prod([max(int(d), 0) for d in shape], dtype=object))
    per = 8 if np.issubdtype(np_type, np.floating) else np.dtype(np_type).itemsize
    if n * per > ASK_ABOVE_BYTES:
        big = max(range(len(shape)), key=lambda i: shape[i])
        require_memory(n * per, f"input {name or '?'} of shape {'x'.join(map(str, shape))} (dim {big} is "
                       f"{shape[big]})", f"pass --shape {name}=... with smaller numbers, or --data with real inputs")


def _fixed_batch_affordable(batch: int, one: dict[str, np.ndarray]) -> None:
    """A graph whose batch is fixed at 2^40 is refused naming that dim (padding a batch to it was numpy's
    `Unable to allocate 8 TiB`)."""
    from ..resources import require_memory

    need = batch * sum(v.nbytes for v in one.values())
    if need > ASK_ABOVE_BYTES:
        require_memory(need, f"one batch of the model's fixed batch size {batch}", "re-export the model with a "
                       "dynamic batch axis, or a fixed batch this host can hold")


def dummy(dtype: str, shape: list[int], rng, name: str = "") -> np.ndarray:
    """Values of the right dtype and shape for an input without data: small floats, ones for masks and
    lengths, zeros for other integers (a valid index), and 16000 for a sample rate."""
    np_type = _np_dtype(dtype)
    _affordable(name, shape, np_type)
    lower = name.lower()
    if np.issubdtype(np_type, np.floating):
        return (rng.standard_normal(shape) * 0.1).astype(np_type)
    if np_type == np.bool_ or "mask" in lower or "len" in lower:
        return np.ones(shape, np_type)
    if lower in ("sr", "sample_rate", "sampling_rate"):
        return np.full(shape, 16000, np_type)
    return np.zeros(shape, np_type)


def batches(io: ModelIO, feeds: Feeds, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """Feed dicts over every sample, `batch_size` at a time (the model's own batch when it is fixed: the
    last one padded with repeats); yields (feed, number of real samples in it)."""
    size = io.batch or batch_size
    n = len(feeds)
    if io.batch is not None and n:
        _fixed_batch_affordable(io.batch, feeds.feed(np.arange(1)))
    for i in range(0, n, size):
        real = min(size, n - i)
        idx = np.arange(i, i + real)
        if io.batch is not None and real < size:
            idx = np.concatenate([idx, np.full(size - real, i + real - 1)])
        yield feeds.feed(idx), real


def timing_feed(io: ModelIO, feeds: Feeds, batch: int, offset: int = 0) -> dict[str, np.ndarray]:
    """One feed of `batch` real samples (cycled), with the same shapes the accuracy run used."""
    if io.batch is not None and batch != io.batch:
        raise UsageError(f"the model's batch is fixed at {io.batch}; --batch {batch} cannot be fed to it",
                         f"use --batch {io.batch}, or re-export the model with a dynamic batch axis")
    n = len(feeds)
    idx = (np.arange(batch) + offset * batch) % max(n, 1)
    return {k: np.ascontiguousarray(v) if k in feeds.samples else v for k, v in feeds.feed(idx).items()}


