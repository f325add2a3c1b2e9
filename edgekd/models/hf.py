"""Hugging Face transformers as teachers and students: a local model folder in, a `TextModel` out.

Everything is read from local files (offline mode is forced: the hub is never contacted). A folder's task is
read from what it declares: `*ForSequenceClassification` is `classification`, `*ForTokenClassification` is
`token-classification`, a sentence-transformers folder (`modules.json`) or a bare encoder is `embedding`, with
the pooling the folder declares (`1_Pooling/config.json`, a `Normalize` module) or mean pooling. Students are
the teacher's config with fewer (or narrower) layers, initialised DistilBERT-style from every k-th teacher layer,
or any smaller local checkpoint; their record holds the config, so `student.pt` stays a plain state dict.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError, install_hint
from ..files import read_json

PREFIX = "hf:"
TASKS = ("classification", "token-classification", "embedding")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")
POOLINGS = ("mean", "cls", "max")
INSTALL_HINT = install_hint("hf")


def is_hf(spec: str | None) -> bool:
    """`hf:PATH`, or a directory with a config.json (a Hugging Face model folder)."""
    if not spec:
        return False
    if spec.startswith(PREFIX):
        return True
    p = Path(spec)
    return p.is_dir() and (p / "config.json").is_file()


def folder(spec: str) -> Path:
    return Path(spec.removeprefix(PREFIX))


def offline() -> None:
    """Never reach the hub: every file comes from the folder the user named."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _transformers():
    offline()
    try:
        import transformers
    except ImportError:
        raise UsageError("Hugging Face models need the transformers package, which is not installed",
                         INSTALL_HINT) from None
    transformers.logging.set_verbosity_error()
    return transformers


def check_folder(path: Path, role: str = "teacher", tokenizer: bool = True) -> dict:
    """The folder's config.json, after checking that its weights and tokenizer files are there (one line
    naming the missing file otherwise)."""
    if not path.is_dir():
        raise UsageError(f"{role} folder {path} does not exist", "pass hf:PATH to a folder saved with "
                                                                  "save_pretrained()")
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise UsageError(f"{path} has no config.json: it is not a Hugging Face model folder",
                         "save the model with model.save_pretrained(PATH)")
    if not any((path / w).is_file() for w in WEIGHT_FILES):
        raise UsageError(f"{path} has config.json but no weights ({' or '.join(WEIGHT_FILES[:2])})",
                         "save the model with model.save_pretrained(PATH) (safetensors or bin)")
    if tokenizer and not any((path / t).is_file() for t in TOKENIZER_FILES):
        raise UsageError(f"{path} has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...)",
                         "save the tokenizer beside the model: tokenizer.save_pretrained(PATH)")
    fix = "restore it with model.config.save_pretrained(PATH)"
    config = read_json(cfg_path, dict, "an object (a model config)", fix)
    _check_config(config, cfg_path, fix)
    _check_weights(path)
    return config


# sizes a config must give as positive whole numbers (of the families edgekd reads, under their own names)
SIZE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "max_position_embeddings", "dim", "hidden_dim", "n_layers", "n_heads", "n_embd", "n_layer", "n_head",
               "num_labels")


def _check_config(config: dict, where: Path, fix: str) -> None:
    """The fields a model is built from, checked before transformers builds it: a config without `model_type`
    (`{}`) would become whatever architecture transformers guesses, with random weights; a size that is a
    string or zero fails deep inside torch."""
    if not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise UsageError(f"{where} has no model_type: transformers would guess an architecture and the weights "
                         "would not load", fix)
    for key in SIZE_FIELDS:
        if key in config and (isinstance(config[key], bool) or not isinstance(config[key], int)
                              or config[key] < 1):
            raise UsageError(f"{where}: {key} is {config[key]!r}, expected a positive whole number", fix)
    if "architectures" in config and not (config["architectures"] is None or (
            isinstance(config["architectures"], list) and all(isinstance(a, str) for a in config["architectures"]))):
        raise UsageError(f"{where}: architectures is {config['architectures']!r}, expected a list of class names",
                         fix)
    for key in ("id2label", "label2id"):
        if key in config and not isinstance(config[key], (dict, type(None))):
            raise UsageError(f"{where}: {key} is a JSON {type(config[key]).__name__}, expected an object", fix)


def _check_weights(path: Path) -> None:
    """Each safetensors file's header and length, before transformers opens it: a truncated, zero-byte or
    garbage file otherwise fails as `SafetensorError: Error while deserializing header`."""
    index = path / "model.safetensors.index.json"
    files = [path / "model.safetensors"] if (path / "model.safetensors").is_file() else []
    if index.is_file():
        m = read_json(index, dict, "an object (a weights index)", "restore the folder from its source")
        shards = m.get("weight_map")
        if not isinstance(shards, dict):
            raise UsageError(f"{index} has no weight_map object", "restore the folder from its source")
        files += [path / str(f) for f in sorted(set(shards.values()))]
    for f in files:
        _check_safetensors(f)


def _check_safetensors(f: Path) -> None:
    fix = "the file is damaged: copy it again from its source (or save_pretrained() it again)"
    if not f.is_file():
        raise UsageError(f"{f} is missing (the weights index names it)", fix)
    size = f.stat().st_size
    with open(f, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or n > 100 << 20:  # the format caps its header at 100 MB
            raise UsageError(f"{f} is not a safetensors file ({size} bytes; no valid header)", fix)
        if 8 + n > size:
            raise UsageError(f"{f} is truncated: its header alone is {8 + n} bytes, the file has {size}", fix)
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (UnicodeDecodeError, ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
        raise UsageError(f"{f} is not a safetensors file (its header is not a tensor table)", fix) from None
    if 8 + n + max(ends, default=0) > size:
        raise UsageError(f"{f} is truncated: its header describes {8 + n + max(ends)} bytes, the file has {size}",
                         fix)


def detect(path: Path, config: dict, task: str | None = None) -> dict:
    """{task, pooling, normalize, why}: what the folder is for, from its own files (`task` overrides)."""
    archs = " ".join(config.get("architectures") or [])
    modules = path / "modules.json"
    pooling, normalize, why = "mean", False, "no pooling declared: mean pooling"
    if modules.is_file():
        fix = "restore modules.json from the sentence-transformers folder (model.save(PATH))"
        mods = read_json(modules, list, "an array of modules", fix)
        if not all(isinstance(m, dict) for m in mods):
            raise UsageError(f"{modules} is not an array of module objects", fix)
        normalize = any(str(m.get("type", "")).endswith("Normalize") for m in mods)
        pool = next((m for m in mods if str(m.get("type", "")).endswith("Pooling")), None)
        pooling, why = "mean", "sentence-transformers folder (modules.json)"
        if pool is not None:
            pcfg = (path / str(pool.get("path", "1_Pooling")) / "config.json")
            if not pcfg.resolve().is_relative_to(path.resolve()):
                raise UsageError(f"{modules} puts the pooling module at {pool.get('path')!r}, outside the folder",
                                 fix)
            if pcfg.is_file():
                p = read_json(pcfg, dict, "an object (a pooling config)", fix)
                pooling = ("cls" if p.get("pooling_mode_cls_token") else "max" if p.get("pooling_mode_max_tokens")
                           else "mean")
                why = f"sentence-transformers folder: {pooling} pooling ({pcfg.relative_to(path)})"
        detected = "embedding"
    elif "ForSequenceClassification" in archs:
        detected, why = "classification", f"architectures: {archs}"
    elif "ForTokenClassification" in archs:
        detected, why = "token-classification", f"architectures: {archs}"
    else:
        detected = "embedding"
        why = f"architectures: {archs or 'none'}: an encoder, mean pooling"
    if task is not None and task not in TASKS:
        raise UsageError(f"--task {task!r} is not one of {', '.join(TASKS)}", "e.g. --task embedding")
    return {"task": task or detected, "pooling": pooling, "normalize": normalize,
            "why": "--task" if task and task != detected else why}


def _auto_class(task: str):
    tf = _transformers()
    return {"classification": tf.AutoModelForSequenceClassification,
            "token-classification": tf.AutoModelForTokenClassification, "embedding": tf.AutoModel}[task]


@functools.cache
def _text_model_class():
    """The TextModel class, defined once (on first use, so that importing this module needs no torch)."""
    import torch
    import torch.nn as nn

    class TextModel(nn.Module):
        """A Hugging Face model taking token ids, returning its task's output: class logits
        (classification), per-token logits (token classification) or the pooled sentence embedding
        (embedding: the pooling and normalisation the folder declares, inside the graph an app runs)."""

        edgekd_output_activation = "none"  # its output is logits or an embedding by contract (api.distill)

        def __init__(self, model, task: str, pooling: str = "mean", normalize: bool = False,
                     input_names: tuple[str, ...] = ("input_ids", "attention_mask"), out_dim: int | None = None,
                     source_vocab: int | None = None):
            super().__init__()
            self.model, self.task, self.pooling, self.normalize = model, task, pooling, normalize
            self.input_names = tuple(input_names)
            self.tokenizer = None  # set by the loader: the folder's own tokenizer
            # a narrower embedder projects onto the teacher's embedding space (part of the exported graph)
            self.project = nn.Linear(model.config.hidden_size, out_dim) if out_dim else None
            # a trimmed vocabulary: the teacher tokenizer's ids -> the student's rows (unseen ids -> [UNK]),
            # inside the graph, so every model of a run takes the same tokenizer's ids
            if source_vocab:
                self.register_buffer("vocab_map", torch.zeros(source_vocab, dtype=torch.int64))
            else:
                self.vocab_map = None

        @property
        def config(self):
            return self.model.config

        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            if self.vocab_map is not None:
                input_ids = self.vocab_map[input_ids]
            kw = {"input_ids": input_ids}
            if attention_mask is not None:
                kw["attention_mask"] = attention_mask
            if token_type_ids is not None and "token_type_ids" in self.input_names:
                kw["token_type_ids"] = token_type_ids
            out = self.model(**kw)
            if self.task != "embedding":
                return out.logits
            h = out.last_hidden_state
            mask = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).unsqueeze(-1)
            mask = mask.to(h.dtype)
            if self.pooling == "cls":
                emb = h[:, 0]
            elif self.pooling == "max":
                emb = (h + (mask - 1) * 1e4).max(1).values
            else:
                emb = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            if self.project is not None:
                emb = self.project(emb)
            return torch.nn.functional.normalize(emb, dim=-1) if self.normalize else emb

    return TextModel


def text_model(model, task: str, pooling: str = "mean", normalize: bool = False, tokenizer=None,
               out_dim: int | None = None, source_vocab: int | None = None):
    """`model` as a TextModel taking the inputs its tokenizer makes and its forward() accepts."""
    import inspect

    names = tuple(getattr(tokenizer, "model_input_names", None) or ("input_ids", "attention_mask"))
    params = inspect.signature(model.forward).parameters
    names = tuple(n for n in names if n in params) or ("input_ids",)
    tm = _text_model_class()(model, task, pooling, normalize, names, out_dim, source_vocab)
    tm.tokenizer = tokenizer
    return tm


def load(spec: str, task: str | None = None, role: str = "teacher"):
    """(TextModel in eval mode, its record) from a local folder."""
    path = folder(spec)
    config = check_folder(path, role)
    info = detect(path, config, task)
    tokenizer = load_tokenizer(str(path))
    cls = _auto_class(info["task"])
    fix = "pass --task to say what the model is for, or check config.json"
    try:
        config = _transformers().AutoConfig.from_pretrained(str(path), local_files_only=True)
        _priced(cls, config, f"the {role} in {path}", 2, "pass a smaller model, or check the sizes in config.json")
        model, report = cls.from_pretrained(str(path), config=config, local_files_only=True,
                                            output_loading_info=True)
    except (ValueError, OSError, KeyError, RuntimeError) as e:
        raise UsageError(f"{path} cannot be loaded as a {info['task']} model ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160] if str(e) else ''})", fix) from None
    _check_loaded(report, path, info["task"], role)
    tm = text_model(model, info["task"], info["pooling"], info["normalize"], tokenizer)
    rec = {"kind": "hf", "spec": str(path.resolve()), "task": info["task"], "pooling": info["pooling"],
           "normalize": info["normalize"], "task_source": info["why"], "model_type": model.config.model_type,
           "layers": layers_of(model.config)}
    return tm.eval(), rec


def _priced(cls, config, what: str, copies: int, fix: str) -> None:
    """The model `config` describes, priced before it is built (a `hidden_size` of 100,000 is an error)."""
    from .students import priced

    priced(lambda: cls.from_config(config), what, copies, fix)


def _check_loaded(report: dict, path: Path, task: str, role: str) -> None:
    """Refuse a model whose weights did not load: transformers initialises what the files lack at random and
    says so only in a log line, so a config naming the wrong architecture (gpt2 over BERT weights) or a head
    that was never trained would be distilled from as if it were the model. A missing pooler is fine: no task
    here uses it."""
    missing = [k for k in report.get("missing_keys", []) if "pooler" not in k]
    mismatched = [k[0] if isinstance(k, tuple) else k for k in report.get("mismatched_keys", [])]
    if missing or mismatched:
        bad = missing or mismatched
        what = "are not in its weights" if missing else "have another shape in its weights"
        raise UsageError(f"the {role} in {path} would be partly random: {len(bad)} of its {task} model's tensors "
                         f"{what} (e.g. {bad[0]}); config.json does not describe these weights",
                         "restore the folder's config.json, or pass --task for the model the weights are")


def load_tokenizer(spec: str):
    """The tokenizer saved in a model folder (local files only)."""
    tf = _transformers()
    path = folder(spec)
    fix = "save it beside the model with tokenizer.save_pretrained(PATH)"
    try:
        tok = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:
        raise UsageError(f"the tokenizer in {path} cannot be loaded ({type(e).__name__}: {str(e)[:160]})", fix) \
            from None
    try:  # a word no vocabulary has: a WordPiece vocabulary without its [UNK] fails here, not mid-data
        tok("zqxjv \u2603")
    except Exception as e:
        raise UsageError(f"the tokenizer in {path} cannot encode an unknown word ({str(e)[:120]})",
                         f"add {getattr(tok, 'unk_token', None) or '[UNK]'} to its vocabulary or restore the "
                         "tokenizer files") from None
    return tok


def layers_of(config) -> int:
    return int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layers", 0) or 0)


def layer_list(model) -> tuple[str, Any]:
    """(name, ModuleList) of the encoder's transformer layers, found by their count (any architecture)."""
    import torch.nn as nn

    n = layers_of(model.config)
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n and n:
            return name, mod
    raise UsageError(f"cannot find the {n} transformer layers of this {model.config.model_type} model",
                     "pass --student hf:PATH to a smaller checkpoint instead")


# ---------------------------------------------------------------- students

STUDENT_KNOBS = {"layers": int, "hidden": int, "heads": int, "intermediate": int}
# how the student starts, not what it is: which teacher layers it copies, and what it keeps frozen
STUDENT_CHOICES = {"pick": ("spread", "ends", "first", "last"), "freeze": ("none", "embeddings")}
_CONFIG_KEYS = {"layers": ("num_hidden_layers", "n_layers"), "hidden": ("hidden_size", "dim"),
                "heads": ("num_attention_heads", "n_heads"), "intermediate": ("intermediate_size", "hidden_dim")}


def parse_student(spec: str) -> dict | str:
    """`hf:layers=2,hidden=256` -> {"layers": 2, "hidden": 256}; `hf:PATH` -> the path."""
    rest = spec.removeprefix(PREFIX)
    if "=" not in rest:
        return rest
    kwargs: dict[str, int | str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if eq and key in STUDENT_CHOICES:
            if value not in STUDENT_CHOICES[key]:
                raise UsageError(f"student option {key}={value!r} must be one of {', '.join(STUDENT_CHOICES[key])}",
                                 f"e.g. hf:layers=2,{key}={STUDENT_CHOICES[key][0]}")
            kwargs[key] = value
            continue
        if not eq or key not in STUDENT_KNOBS:
            raise UsageError(f"student option {part!r} is not an hf knob (knobs: "
                             f"{', '.join([*STUDENT_KNOBS, *STUDENT_CHOICES])})",
                             "e.g. --student hf:layers=2 or --student hf:PATH")
        try:
            kwargs[key] = int(value)
        except ValueError:
            raise UsageError(f"student option {key}={value!r} is not a whole number", f"e.g. hf:{key}=2") from None
        if kwargs[key] < 1:
            raise UsageError(f"student option {key}={value} must be at least 1", f"e.g. hf:{key}=2")
    return kwargs


def _set(config, knob: str, value: int) -> None:
    for key in _CONFIG_KEYS[knob]:
        if hasattr(config, key):
            setattr(config, key, value)
            return
    raise UsageError(f"a {config.model_type} config has no {knob} setting", "drop that knob from --student")


def _get(config, knob: str) -> int | None:
    return next((int(getattr(config, k)) for k in _CONFIG_KEYS[knob] if getattr(config, k, None) is not None), None)


def student_config(teacher, kwargs: dict):
    """The teacher's config with the knobs changed (fewer layers, narrower), checked for sense."""
    import copy

    cfg = copy.deepcopy(teacher.config)
    kwargs = {k: v for k, v in kwargs.items() if k in STUDENT_KNOBS}  # pick/freeze shape no config
    t_layers = layers_of(cfg)
    n = kwargs.get("layers", max(1, t_layers // 2))
    if n >= t_layers:
        raise UsageError(f"--student hf:layers={n} is not smaller than the teacher ({t_layers} layers)",
                         f"use layers=1..{t_layers - 1}")
    t_hidden, t_heads, t_ff = _get(cfg, "hidden"), _get(cfg, "heads"), _get(cfg, "intermediate")
    narrower = dict(kwargs)
    if "hidden" in kwargs and t_hidden and t_heads:
        # a narrower student keeps the teacher's head size and FFN ratio unless told otherwise: its weights
        # then start as slices of the teacher's (whole heads, the first FFN units)
        head = t_hidden // t_heads
        if "heads" not in kwargs and kwargs["hidden"] % head == 0:
            narrower["heads"] = kwargs["hidden"] // head
        if "intermediate" not in kwargs and t_ff:
            narrower["intermediate"] = max(1, round(t_ff * kwargs["hidden"] / t_hidden))
    for knob, value in {"layers": n, **narrower}.items():
        _set(cfg, knob, value)
    hidden, heads = _get(cfg, "hidden"), _get(cfg, "heads")
    if hidden and heads and hidden % heads:
        raise UsageError(f"--student hidden={hidden} is not a multiple of heads={heads}",
                         f"e.g. hidden={heads * max(1, hidden // heads)} or heads that divide {hidden}")
    return cfg


def build_student(teacher, spec: str, init: bool = True, keep_ids=None) -> tuple[Any, dict]:
    """(student TextModel, record) for `hf:layers=N[,hidden=..]` (initialised from the teacher) or `hf:PATH`.
    `keep_ids` (token ids the training texts use, special tokens included) trims the embedding table."""
    parsed = parse_student(spec)
    if keep_ids is not None and isinstance(parsed, str):
        raise UsageError("--trim-vocab needs a student built from the teacher (hf:layers=N), not a checkpoint",
                         "drop --trim-vocab, or use --student hf:layers=N")
    if isinstance(parsed, str):
        student, rec = load(PREFIX + parsed, teacher.task, role="student")
        _check_compatible(teacher, student, parsed)
        rec = {"family": "hf", "kwargs": {"path": rec["spec"]}, "config": student.config.to_dict(),
               "task": teacher.task, "pooling": teacher.pooling, "normalize": teacher.normalize,
               "input_names": list(student.input_names)}
        return student, rec
    cfg = student_config(teacher, parsed)
    source_vocab = None
    if keep_ids is not None:
        source_vocab = int(cfg.vocab_size)
        cfg.vocab_size = len(keep_ids)
    _priced(_auto_class(teacher.task), cfg, f"the student {spec}", 4, "pick a smaller student (hidden, layers)")
    model = _auto_class(teacher.task).from_config(cfg)
    t_dim = teacher.config.hidden_size
    out_dim = t_dim if teacher.task == "embedding" and cfg.hidden_size != t_dim else None
    student = text_model(model, teacher.task, teacher.pooling, teacher.normalize, teacher.tokenizer, out_dim,
                         source_vocab)
    if keep_ids is not None:
        _trim_vocab(student, teacher, keep_ids)
    pick, freeze = student_start(teacher.task, parsed)
    how = init_from_teacher(student, teacher, pick) if init else "random"
    if freeze == "embeddings" and init:
        for name, param in student.named_parameters():  # the teacher's token table, kept as it is
            if "embeddings" in name:
                param.requires_grad_(False)
    rec = {"family": "hf", "kwargs": parsed, "config": cfg.to_dict(), "task": teacher.task,
           "pooling": teacher.pooling, "normalize": teacher.normalize, "input_names": list(student.input_names),
           "out_dim": out_dim, "source_vocab": source_vocab, "init": how}
    return student, rec


def kept_ids(tokenizer, *id_arrays) -> list[int]:
    """The token ids a vocabulary-trimmed student keeps: those the texts use, plus the special tokens."""
    import numpy as np

    used = set(np.unique(np.concatenate([a.ravel() for a in id_arrays])).tolist())
    return sorted(used | set(getattr(tokenizer, "all_special_ids", []) or []))


def _trim_vocab(student, teacher, keep: list[int]) -> None:
    """The student's embedding rows are the teacher's rows of the kept ids (in id order); every other id
    maps to [UNK] (or the first kept id when the tokenizer has none)."""
    import torch

    unk = getattr(teacher.tokenizer, "unk_token_id", None)
    index = {t: i for i, t in enumerate(keep)}
    student.vocab_map.fill_(index.get(unk, 0))
    student.vocab_map[torch.tensor(keep)] = torch.arange(len(keep))
    t_emb, s_emb = teacher.model.get_input_embeddings(), student.model.get_input_embeddings()
    if t_emb.weight.shape[1] >= s_emb.weight.shape[1]:
        with torch.no_grad():
            s_emb.weight.copy_(t_emb.weight[torch.tensor(keep)][:, :s_emb.weight.shape[1]])


def _check_compatible(teacher, student, path: str) -> None:
    tv, sv = teacher.config.vocab_size, student.config.vocab_size
    if tv != sv:
        raise UsageError(f"student {path} has a vocabulary of {sv} tokens, the teacher {tv}: their tokenizers differ",
                         "pick a student trained with the teacher's tokenizer, or use --student hf:layers=N")
    if teacher.task != "embedding":
        tl, sl = teacher.config.num_labels, student.config.num_labels
        if tl != sl:
            raise UsageError(f"student {path} predicts {sl} labels, the teacher {tl}",
                             "use a student with the teacher's label set")


def build_from_record(rec: dict):
    """Rebuild a student from its record (config in JSON; weights come from student.pt)."""
    tf = _transformers()
    cfg = dict(rec["config"])
    config = tf.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    model = _auto_class(rec["task"]).from_config(config)
    return _text_model_class()(model, rec["task"], rec.get("pooling", "mean"), rec.get("normalize", False),
                               tuple(rec.get("input_names") or ("input_ids", "attention_mask")), rec.get("out_dim"),
                               rec.get("source_vocab"))


DEFAULT_PICK = "spread"
DEFAULT_FREEZE = "none"
# an embedder's student keeps the teacher's last layer (its output is what is pooled) and its token table
# (held-out text uses tokens training never saw): measured on a real pretrained embedder, held-out cosine
# 0.692 -> 0.788 -> 0.793 (benchmarks/RESULTS.md, issue 26)
TASK_START = {"embedding": ("ends", "embeddings")}


def student_start(task: str, parsed: dict) -> tuple[str, str]:
    """(pick, freeze) for a student: its own knobs, else the task's measured default, else DistilBERT's."""
    pick, freeze = TASK_START.get(task, (DEFAULT_PICK, DEFAULT_FREEZE))
    return str(parsed.get("pick", pick)), str(parsed.get("freeze", freeze))


def picked_layers(n: int, total: int, pick: str = DEFAULT_PICK) -> list[int]:
    """Which of the teacher's `total` layers a student of `n` copies: every k-th from the first (spread,
    DistilBERT's), evenly from the first to the last (ends: the last layer, whose output is pooled, kept),
    the first n, or the last n."""
    if pick == "first":
        return list(range(n))
    if pick == "last":
        return list(range(total - n, total))
    if pick == "ends":
        return [total - 1] if n == 1 else [round(i * (total - 1) / (n - 1)) for i in range(n)]
    k = max(1, total // n)
    return [min(i * k, total - 1) for i in range(n)]


def init_from_teacher(student, teacher, pick: str = DEFAULT_PICK) -> str:
    """DistilBERT's initialisation: embeddings and teacher layers (`picked_layers`). A narrower student takes
    the leading slice of each teacher tensor (the first hidden dims everywhere, so the residual stream stays
    consistent; whole heads when it keeps the teacher's head size; the first FFN units)."""
    import torch

    s_name, s_layers = layer_list(student.model)
    t_name, t_layers = layer_list(teacher.model)
    picked = picked_layers(len(s_layers), len(t_layers), pick)
    t_state = teacher.state_dict()
    s_state = student.state_dict()
    prefix_s, prefix_t = f"model.{s_name}.", f"model.{t_name}."
    copied = 0
    with torch.no_grad():
        for key, value in s_state.items():
            src = key
            if key.startswith(prefix_s):
                idx, _, rest = key[len(prefix_s):].partition(".")
                src = f"{prefix_t}{picked[int(idx)]}.{rest}"
            if key == "vocab_map" or (student.vocab_map is not None and "word_embeddings" in key):
                continue  # a trimmed table was filled from the kept ids' rows already
            part = _leading(t_state.get(src), value.shape)
            if part is not None:
                value.copy_(part)
                copied += 1
    if copied == 0:
        return "random (no teacher weights fit the student's shapes)"
    return f"teacher layers {','.join(map(str, picked))} and embeddings ({copied}/{len(s_state)} tensors)"


def _leading(t, shape):
    """The teacher tensor `t` cut to `shape` along every axis (None when it is smaller or of another rank)."""
    if t is None or t.ndim != len(shape) or any(a < b for a, b in zip(t.shape, shape)):
        return None
    return t[tuple(slice(0, n) for n in shape)]


def _mapped_layers(student, teacher) -> list[tuple[str, str]]:
    """(teacher layer, student layer) module names: student layer i <-> teacher layer (i + 1) * k - 1."""
    s_name, s_layers = layer_list(student.model)
    t_name, t_layers = layer_list(teacher.model)
    k = max(1, len(t_layers) // len(s_layers))
    return [(f"model.{t_name}.{(i + 1) * k - 1}", f"model.{s_name}.{i}") for i in range(len(s_layers))]


_QKV = {"q": ("query", "q_lin", "q_proj"), "k": ("key", "k_lin", "k_proj"), "v": ("value", "v_lin", "v_proj")}


def _projection(model, layer: str, which: str) -> str:
    """The name of a layer's query / key / value projection (BERT, DistilBERT, RoBERTa... naming)."""
    root = dict(model.named_modules())[layer]
    for name, _ in root.named_modules():
        if name.rsplit(".", 1)[-1] in _QKV[which]:
            return f"{layer}.{name}"
    raise UsageError(f"cannot find the {which} projection in {layer}", "pass --feature-map for this architecture")


def feature_groups(student, teacher, methods: list[str]) -> dict[str, list[str]]:
    """Each HF feature method's own TEACHER:STUDENT pairs: hidden states of mapped layers (hint, cosine),
    their queries and keys (attn: TinyBERT), the last layer's queries, keys and values (minilm)."""
    layers = _mapped_layers(student, teacher)
    groups: dict[str, list[str]] = {}
    for m in methods:
        if m in ("hint", "cosine", "rkd"):
            groups[m] = [f"{t}:{s}" for t, s in layers]
        elif m == "attn":
            groups[m] = [f"{_projection(teacher, t, w)}:{_projection(student, s, w)}" for t, s in layers
                         for w in "qk"]
        elif m == "minilm":
            t, s = layers[-1]
            groups[m] = [f"{_projection(teacher, t, w)}:{_projection(student, s, w)}" for w in "qkv"]
    return groups


# ---------------------------------------------------------------- files an app needs

def save_app_folder(model, out: Path) -> list[str]:
    """config.json (with the task, pooling and labels) and the tokenizer files, so that an app can load the
    folder with transformers or optimum.onnxruntime (the .onnx goes beside them)."""
    out.mkdir(parents=True, exist_ok=True)
    model.model.config.save_pretrained(str(out))
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(out))
    (out / "edgekd.json").write_text(json.dumps({"task": model.task, "pooling": model.pooling,
                                                 "normalize": model.normalize,
                                                 "input_names": list(model.input_names)}, indent=2) + "\n")
    return sorted(p.name for p in out.iterdir())


# ---------------------------------------------------------------- ONNX

ORT_MODEL_TYPES = {"bert": "bert", "distilbert": "bert", "roberta": "bert", "xlm-roberta": "bert",
                   "camembert": "bert", "electra": "bert", "albert": "bert", "mpnet": "bert"}
OPTIMUM_TASKS = {"classification": "text-classification", "token-classification": "token-classification"}


def is_text_model(model) -> bool:
    """A TextModel (a Hugging Face model as edgekd runs it), adapted or not."""
    from .inference import unwrap

    return isinstance(unwrap(model), _text_model_class())


def to_onnx(model, sample: dict, path: Path, opset: int, output_name: str) -> dict:
    """Export a TextModel with batch and sequence dynamic and int64 token inputs: classifiers through
    optimum's exporter; embedders (their pooling and normalisation are edgekd's, which optimum's
    feature-extraction export lacks) and architectures optimum cannot export through torch.onnx.export with
    named dynamic axes. Returns how it was exported."""
    from .inference import unwrap

    tm = unwrap(model)
    how: dict = {}
    if tm.task in OPTIMUM_TASKS and getattr(tm, "vocab_map", None) is None:
        try:
            return _optimum_export(tm, path, opset)
        except Exception as e:  # optimum cannot export every architecture: fall back, and say so
            how["fallback"] = f"optimum could not export it ({type(e).__name__}: {str(e).splitlines()[0][:120]}); " \
                              "exported with torch.onnx.export instead"
    _torch_export(model, sample, path, opset, output_name, per_token=tm.task == "token-classification")
    how.setdefault("why", "embedders: the pooled sentence_embedding is exported with torch.onnx.export"
                   if tm.task == "embedding" else "a trimmed vocabulary: the id map is part of the graph"
                   if getattr(tm, "vocab_map", None) is not None else "")
    return {"exporter": "torch.onnx", **how}


def _optimum_export(tm, path: Path, opset: int) -> dict:
    import shutil
    import tempfile

    from optimum.exporters.onnx import onnx_export_from_model

    from ..deploy.export import quiet

    with tempfile.TemporaryDirectory() as td, quiet():
        onnx_export_from_model(tm.model, td, task=OPTIMUM_TASKS[tm.task], opset=opset, do_validation=False)
        shutil.move(str(Path(td) / "model.onnx"), str(path))
    return {"exporter": "optimum"}


def _torch_export(model, sample: dict, path: Path, opset: int, output_name: str, per_token: bool) -> None:
    import numpy as np
    import torch

    from ..deploy.export import quiet

    names = list(sample)
    args = tuple(torch.from_numpy(np.ascontiguousarray(v[:2])) for v in sample.values())
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes[output_name] = {0: "batch", 1: "sequence"} if per_token else {0: "batch"}
    with quiet():
        torch.onnx.export(model.eval(), args, str(path), dynamo=False, opset_version=min(opset, 17),
                          input_names=names, output_names=[output_name], dynamic_axes=axes)


def optimize(src: Path, dst: Path, config: dict) -> dict:
    """onnxruntime's transformer optimizer (Attention, LayerNorm, GELU and embedding fusions) on `src`,
    written to `dst`; returns the fused operators it made."""
    from onnxruntime.transformers.optimizer import optimize_model

    from ..deploy.export import quiet

    model_type = ORT_MODEL_TYPES.get(config.get("model_type", ""), "bert")
    heads = int(config.get("num_attention_heads") or config.get("n_heads") or 0)
    hidden = int(config.get("hidden_size") or config.get("dim") or 0)
    with quiet():
        opt = optimize_model(str(src), model_type=model_type, num_heads=heads, hidden_size=hidden)
        fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
        opt.save_model_to_file(str(dst))
    return fused
