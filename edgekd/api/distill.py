"""`edgekd distill`: a teacher and data in, a trained student (RUN/student.pt) and its eval set out."""
from __future__ import annotations

import contextlib
import os
import shlex
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import data as data_mod
from ..errors import UsageError
from ..files import atomic_path, sha256, step_lock
from ..progress import note, say
from . import trust
from .options import DistillOptions
from .rundir import RunDir
from .target import Result, load_profile

DEFAULT_STUDENT = "mlp:hidden=160"
DEFAULT_TOKEN_STUDENT = "transformer:hidden=64,layers=2"  # never an MLP over raw token ids


@dataclass
class DistillResult(Result):
    run: str
    student: dict
    student_params: int
    teacher_params: int
    param_ratio: float
    teacher_accuracy: float | None
    student_accuracy: float | None
    retention: float | None
    agreement: float
    epochs: int
    seconds: float
    profile: str | None = None
    method: str = "kd"
    student_flops: int = 0
    teacher_flops: int = 0
    cache: str = "off"
    best_epoch: int | None = None
    stopped_early: bool = False
    resumed_from: int | None = None
    init: str = "random"
    agreement_metric: str = "top1_agreement"
    nn_agreement: float | None = None  # embedders: top-1 nearest neighbour the same as the teacher's
    sizing: dict | None = None
    notes: list[str] = field(default_factory=list)
    verdict: str = ""
    next: str = ""


RETENTION_BAR = 0.97  # DistilBERT kept 97% of BERT's quality: the bar a student should clear
TEXT_VAL_SPLIT = 0.1  # Hugging Face teachers: a tenth of the texts held out, and
TEXT_PATIENCE = 3     # training stops after 3 epochs without a better score there (the best epoch is kept)
COSINE_BAR = 0.90     # an embedder whose embeddings point elsewhere breaks the app's index


def verdict(r: DistillResult) -> str:
    """One line in words: how much smaller (and, when sized, faster) the student is, at what retention."""
    from ..models.students import spec_of

    parts = [f"student {spec_of(r.student)}: {r.param_ratio:.1f}x fewer parameters than the teacher"]
    if r.sizing:
        t, c = r.sizing["teacher"]["predicted_ms"], r.sizing["chosen"]["predicted_ms"]
        parts.append(f"{t / c:.1f}x faster on {r.sizing['profile']} (predicted {c:.3g} vs {t:.3g} ms)")
    if r.agreement_metric == "token_agreement":
        parts.append(f"{r.agreement:.1%} of tokens labelled as the teacher labels them")
    elif r.agreement_metric == "mean_cosine":
        parts.append(f"mean cosine {r.agreement:.3f} to its embeddings, {r.nn_agreement:.1%} nearest-neighbour "
                     "agreement")
    elif r.agreement_metric == "label_agreement":
        parts.append(f"{r.agreement:.1%} of its outputs on the teacher's side of 0.5")
    elif r.retention is not None:
        parts.append(f"{r.retention:.1%} of its accuracy")
    else:
        parts.append(f"{r.agreement:.1%} top-1 agreement with it (no labels)")
    line = ", ".join(parts)
    if r.agreement_metric == "mean_cosine" and r.agreement < COSINE_BAR:
        line += f"; below the {COSINE_BAR} mean cosine to aim for: more --epochs, more texts, or a larger --student"
    if r.retention is not None and r.retention < RETENTION_BAR:
        line += f"; below the {RETENTION_BAR:.0%} to aim for: more --epochs, or a larger --student"
    return line


# a teacher module whose class sets this ("none", "softmax" or "sigmoid") says what its output holds, instead of
# edgekd telling it from the values (models.hf's TextModel: "none", its logits)
DECLARED_ACTIVATION = "edgekd_output_activation"

_METRIC = {"logits": "top1_agreement", "embedding": "mean_cosine", "tokens": "token_agreement",
           "sigmoid": "label_agreement"}


def _agreement(s_out: np.ndarray, t_out: np.ndarray, kind: str, mask: np.ndarray | None = None) -> float:
    """Top-1 agreement with the teacher for class logits (per real token for token classifiers); mean
    cosine to its embeddings for embedders."""
    from ..deploy.measure import label_agreement, mean_cosine, token_agreement

    if kind == "embedding":
        return mean_cosine(s_out, t_out)
    if kind == "tokens":
        return token_agreement(s_out, t_out, mask)
    if kind == "sigmoid":
        return label_agreement(t_out, s_out)
    return float((s_out.argmax(-1) == t_out.argmax(-1)).mean())


def _activation(o: DistillOptions, tmodel, ds: data_mod.Dataset, kind: str) -> str:
    """Whether the teacher outputs probabilities ("softmax", "sigmoid") or logits ("none"): --output-kind, else
    its values on the first training samples. Said in a note when they are probabilities."""
    from ..deploy.measure import ACTIVATION_SAMPLES, output_activation
    from ..kd.methods import parse
    from ..models.inference import predict, unwrap

    declared = getattr(unwrap(tmodel), DECLARED_ACTIVATION, None)  # a model that says what it outputs
    if declared is not None and o.output_kind not in ("auto", "logits" if declared == "none" else declared):
        raise UsageError(f"--output-kind {o.output_kind}: this teacher declares its outputs as "
                         f"{declared if declared != 'none' else 'logits'} (a Hugging Face model's are logits)",
                         "leave --output-kind out for this teacher")
    if kind != "logits" or o.output_kind == "logits":
        return "none"
    act = declared or (o.output_kind if o.output_kind != "auto" else
                       output_activation(predict(tmodel, data_mod.take(ds.x_train, slice(0, ACTIVATION_SAMPLES)))))
    if act == "sigmoid" and any(t.name == "dkd" for t in parse(o.method)):
        raise UsageError("--method dkd decouples softmax classes; this teacher's outputs are independent (sigmoid)",
                         "use --method kd (BCE per output), optionally with feature methods: kd+hint:0.5")
    if act != "none":
        what = "rows summing to 1" if act == "softmax" else "each output in [0, 1] on its own"
        note(f"the teacher outputs {act} probabilities ({what}): distilled in logit space"
             f"{' with BCE per output' if act == 'sigmoid' else ''}, and the student outputs {act} probabilities "
             "too (--output-kind logits if they are logits after all)", ds.notes)
    return act


def _mask(x) -> np.ndarray | None:
    return x.get("attention_mask") if isinstance(x, dict) else None


def _save_student(path: Path, model, spec: dict) -> None:
    import torch

    from ..models.inference import unwrap

    with atomic_path(path) as tmp:
        torch.save({"spec": spec, "state_dict": unwrap(model).state_dict()}, str(tmp))


EVAL_LIMIT_BYTES = 64 * 2**20  # test inputs kept in RUN/eval.npz (the first samples up to this size)


CALIB_KEPT = 512               # random training samples kept there for int8 calibration


def _save_eval(run: RunDir, ds: data_mod.Dataset, seed: int) -> str:
    """RUN/eval.npz: the test split, its labels and calibration samples, so that export, quantize and bench
    need neither the data nor the code that read it (and the run can be moved or sent)."""
    from ..data import arrays, n_samples, take

    test = arrays(ds.x_test)
    per = sum(v[:1].nbytes for v in test.values()) or 1
    n = min(n_samples(ds.x_test), max(1, EVAL_LIMIT_BYTES // per))
    order = np.random.default_rng(seed).permutation(n_samples(ds.x_train))[:CALIB_KEPT]
    calib = arrays(take(ds.x_train, order))
    blob = {**{f"test:{k}": v[:n] for k, v in test.items()}, **{f"calib:{k}": v for k, v in calib.items()},
            **{f"const:{k}": v for k, v in ds.constants.items()}}
    if ds.y_test is not None:
        blob["labels"] = ds.y_test[:n]
    blob["calib_labels"] = ds.y_train[order]  # -1 where unlabeled
    with atomic_path(run / "eval.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **blob)
    return sha256(run / "eval.npz")


def _abs_spec(spec: str) -> str:
    """A teacher or data SPEC with its file made absolute, so the manifest survives moving the run."""
    path, sep, attr = spec.rpartition(":") if spec.count(":") == 1 and not Path(spec).exists() else (spec, "", "")
    p = Path(path)
    if p.exists():
        return str(p.resolve()) + sep + attr
    return spec


def _augment_text(ds, codec) -> None:
    """--augment on text: the training part (never the validation or test part) grows by teacher-labelled
    variants of its texts, some tokens replaced (data.text.augmented)."""
    from ..data.text import AUGMENT_COPIES, AUGMENT_RATE, augmented

    if "attention_mask" not in ds.x_train:
        raise UsageError("--augment on text data needs the tokenizer's attention_mask", "drop --augment")
    n = data_mod.n_samples(ds.x_train)
    ds.x_train = augmented(ds.x_train, set(codec.tokenizer.all_special_ids))
    ds.y_train = np.concatenate([ds.y_train, np.full(n * AUGMENT_COPIES, data_mod.UNLABELED, np.int64)])
    ds.notes.append(f"--augment: {n * AUGMENT_COPIES} variants of the {n} training texts ({AUGMENT_RATE:.0%} of "
                    f"their tokens replaced), labelled by the teacher: about {1 + AUGMENT_COPIES}x the training time")


def _data_options(o: DistillOptions) -> data_mod.DataOptions:
    def floats(name):
        try:
            return tuple(float(v) for v in getattr(o, name).split(","))
        except ValueError:
            raise UsageError(f"--{name} must be comma-separated numbers, got {getattr(o, name)!r}",
                             f"e.g. --{name} 0.485,0.456,0.406") from None
    return data_mod.DataOptions(val_split=o.val_split, label_column=o.label_column, image_size=o.image_size,
                                channels=int(o.channels), mean=floats("mean"), std=floats("std"),
                                unlabeled=o.unlabeled, text_column=o.text_column,
                                text_pair_column=o.text_pair_column, max_length=o.max_length,
                                encoding=o.encoding)


def _hf_student(o: DistillOptions, ds: data_mod.Dataset, tmodel, prof, show_progress: bool):
    """A Hugging Face student of a Hugging Face teacher, built and initialised from it (or a checkpoint)."""
    from ..models import hf
    from ..models.inference import adapt, unwrap

    teacher = unwrap(tmodel)
    spec, sized = _hf_spec(o, ds, teacher, prof, show_progress)
    keep = None
    if o.trim_vocab:
        keep = hf.kept_ids(teacher.tokenizer, ds.x_train["input_ids"])
        ds.notes.append(f"--trim-vocab: {len(keep):,} of {teacher.config.vocab_size:,} token embeddings kept (the "
                        "ids the training texts use, and the special tokens); other ids map to "
                        f"{teacher.tokenizer.unk_token or 'the first kept id'}")
    smodel, rec = hf.build_student(teacher, spec, init=o.init == "auto", keep_ids=keep)
    rec.update({"input_shape": list(ds.input_shape), "num_classes": int(teacher.config.num_labels),
                "output_name": "sentence_embedding" if teacher.task == "embedding" else "logits",
                "input_names": ds.input_names})
    return adapt(smodel, ds.input_names, None, ds.constants), rec, sized, rec.pop("init", "random"), None


def _hf_spec(o: DistillOptions, ds: data_mod.Dataset, teacher, prof, show_progress: bool):
    """(student spec, sizing result or None): `--student hf:...`; sized to the profile when it has no knobs
    (none, or a bare `hf`); else half the teacher's layers, DistilBERT's recipe."""
    from ..models import hf
    from ..progress import step_progress
    from .size import hf_search

    default = f"hf:layers={max(1, hf.layers_of(teacher.config) // 2)}"
    if o.student is not None and not o.student.startswith(hf.PREFIX) and o.student != "hf":
        raise UsageError(f"--student {o.student} cannot take a Hugging Face teacher's token ids and attention mask",
                         "use --student hf:layers=2 (the teacher's architecture, fewer layers) or hf:PATH")
    if prof is None or o.student not in (None, "hf"):
        return (default if o.student in (None, "hf") else o.student), None
    with step_progress("sizing") as progress:
        sized = hf_search(ds, teacher, prof, budget_ms=o.budget_ms, memory_mb=o.memory_mb, quantize=o.quantize,
                          threads=o.threads, margin=o.margin, speedup=o.speedup,
                          progress=progress if show_progress else None)
    for w in sized.warnings:  # known now: said before training, not after it
        note(w, ds.notes)
    return sized.chosen["spec"], sized


def _default_student(ds: data_mod.Dataset) -> str:
    from ..models.students import token_ids

    return DEFAULT_TOKEN_STUDENT if token_ids(ds.x_train) else DEFAULT_STUDENT


def _student(o: DistillOptions, ds: data_mod.Dataset, tmodel, t_outputs: int, num_classes: int, prof,
             show_progress: bool, warm=None):
    """The student to train: sized to the profile when it has no knobs, built, adapted to the data's inputs,
    checked against the teacher's outputs and initialised from the teacher where the structures match.
    Returns (student, its record, the sizing result or None, how it was initialised, its chosen output)."""
    from ..kd.trainer import seed_everything
    from ..models import prune, students
    from ..models.hf import is_text_model
    from ..models.inference import adapt, check_student_fits, single_input, student_output, unwrap
    from ..progress import step_progress
    from .size import init_from_teacher, search

    if is_text_model(tmodel):
        return _hf_student(o, ds, tmodel, prof, show_progress)
    if prune.is_prune(o.student):
        return _pruned_student(o, ds, tmodel, t_outputs, prof, warm)
    if o.trim_vocab:
        raise UsageError("--trim-vocab is for Hugging Face teachers and students", "drop --trim-vocab")
    sized = None
    if prof is not None and (o.student is None or o.student in students.FAMILIES):
        single_input(ds, o.student or "sizing")
        with step_progress("sizing") as progress:
            sized = search(ds, tmodel, num_classes, prof, o.student, budget_ms=o.budget_ms, memory_mb=o.memory_mb,
                           quantize=o.quantize, threads=o.threads, margin=o.margin, speedup=o.speedup,
                           progress=progress if show_progress else None)
        for w in sized.warnings:  # known now: said before training, not after it
            note(w, ds.notes)
    student = sized.chosen["spec"] if sized else (o.student or _default_student(ds))
    if not students.is_entrypoint(student):
        single_input(ds, student)
        student = students.with_vocab(student, students.vocab_of(ds.x_train, ds.x_test))
    rec = students.record(student, ds.input_shape, num_classes)
    seed_everything(o.seed)
    smodel = students.build(rec)
    s_output = student_output(smodel, ds)
    rec.update({"input_names": ds.input_names, "output": s_output})
    smodel = adapt(smodel, ds.input_names, s_output, ds.constants)
    check_student_fits(smodel, ds, t_outputs)
    init_used = init_from_teacher(unwrap(smodel), unwrap(tmodel)) if o.init == "auto" else "random"
    return smodel, rec, sized, init_used, s_output


def pruning_epochs(epochs: int, steps: int) -> tuple[int, int]:
    """(epochs of distillation after each intermediate pruning step, epochs on the final student): an equal
    share of --epochs each, the final student getting the rest (at least one share); (0, epochs) when --epochs
    is below the steps."""
    per = epochs // steps
    return per, epochs - per * (steps - 1)


def _pruned_student(o: DistillOptions, ds: data_mod.Dataset, tmodel, t_outputs: int, prof, warm=None):
    """`--student prune:...`: the teacher with a share of its channels cut (models.prune), its kept weights the
    teacher's, adapted to the data's inputs like any student."""
    from ..models import prune
    from ..models.inference import adapt, as_args, check_student_fits, unwrap

    knobs = prune.parse(o.student)
    teacher = unwrap(tmodel)
    sized = None
    if prof is not None and "ratio=" not in o.student:  # sized: the least ratio predicted to fit
        from ..progress import step_progress
        from .size import prune_search

        if ds.input_names:
            raise UsageError("sizing --student prune takes one input array; this data has named inputs",
                             "pass --student prune:ratio=R to choose the ratio yourself")
        with step_progress("sizing") as progress:
            knobs, sized = prune_search(ds, teacher, prof, knobs, budget_ms=o.budget_ms, speedup=o.speedup,
                                        threads=o.threads, quantize=o.quantize, margin=o.margin, progress=progress)
        note(sized.verdict, ds.notes)
    elif o.budget_ms or o.speedup:
        raise UsageError("--budget-ms / --speedup size a pruned student on a --profile", "add --profile NAME, or "
                         "pass --student prune:ratio=R")
    example = as_args(data_mod.take(ds.x_train, slice(0, 2)))
    say(f"pruning {knobs['ratio']:.0%} of the teacher's channels ({knobs['importance']} importance, channel "
        f"counts rounded to multiples of {knobs['rounding']})")
    steps = knobs["steps"]
    per, final = pruning_epochs(o.epochs, steps)

    def between(model, k: int) -> None:  # iterative pruning: distil the partly pruned student before the next cut
        say(f"pruning step {k + 1} of {steps} done: distilling it for {per} epoch(s) before the next cut")
        warm(adapt(model, ds.input_names, getattr(tmodel, "output", None), ds.constants), per)
    student, structure = prune.prune(teacher, example, knobs, between if steps > 1 and warm and per else None)
    if steps > 1:
        note(f"pruned in {steps} steps, each but the last followed by {per} epoch(s) of distillation; then "
             f"{final} epoch(s) on the final student" if per else
             f"pruned in {steps} steps with no distillation between them (--epochs {o.epochs} is below the "
             "steps)", ds.notes)
    rec = {"family": "prune", "kwargs": knobs, "input_shape": list(ds.input_shape),
           "num_classes": int(t_outputs), "structure": structure, "input_names": ds.input_names,
           "output": getattr(tmodel, "output", None)}
    smodel = adapt(student, ds.input_names, rec["output"], ds.constants)
    check_student_fits(smodel, ds, t_outputs)
    kept = prune.params(student) / max(1, prune.params(teacher))
    return smodel, rec, sized, f"the teacher pruned ({kept:.0%} of its parameters kept, their weights)", \
        rec["output"]


def distill(teacher: str, data: str, out: str | os.PathLike, *, show_progress: bool = True,
            **options) -> DistillResult:
    """Distil `teacher` into a small student on `data` (options: see `DistillOptions`, e.g. method="kd",
    student="mlp:hidden=64"); write RUN/student.pt, eval.npz, metrics.jsonl, checkpoints/ and the manifest.

    With a `profile` and no student knobs (`student` None or a bare family name), the student is sized
    first: the candidate with the most capacity whose predicted latency and peak memory fit the budgets."""
    from ..data.text import codec_for
    from ..deploy.measure import nn_agreement
    from ..kd.methods import needs_features, parse
    from ..kd.trainer import Distiller, TrainConfig, accuracy
    from ..models import students
    from ..models.inference import adapt, fit_teacher, predict, unwrap
    from ..models.io import ModelIO
    from ..models.teachers import load_teacher
    from .options import build

    o = build(DistillOptions, options)
    parse(o.method or "kd")
    if o.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: this machine has no CUDA device (or this torch has no CUDA)",
                             "use --device auto or cpu here, or install a CUDA build of torch on a GPU machine")
    prof = load_profile(o.profile)
    say(f"loading the teacher {teacher}")
    traw, trec = load_teacher(teacher, o.arch, task=o.task, trust_pickle=o.trust_pickle)
    codec = codec_for(traw)
    text = codec is not None  # text teachers stop when the held-out score stops improving, by default
    o.val_split = (TEXT_VAL_SPLIT if text else 0.0) if o.val_split is None else o.val_split
    o.patience = (TEXT_PATIENCE if text else 0) if o.patience is None else o.patience
    opts = _data_options(o)
    say(f"reading the data {data}")
    ds = data_mod.load(data, opts, codec=codec)
    if text and o.augment:
        _augment_text(ds, codec)
    say("running the teacher on the data")
    kind = {"embedding": "embedding", "token-classification": "tokens"}.get(getattr(traw, "task", None), "logits")
    o.method = o.method or ("embed" if kind == "embedding" else "kd")
    tmodel, t_out, t_output = fit_teacher(traw, ds, o.output)
    activation = _activation(o, tmodel, ds, kind)
    # the teacher's head decides the classes (labels beyond it were refused above): data missing its highest
    # class is as fine as data missing its lowest
    num_classes = t_out.shape[-1]
    augment = ds.kind == "image" if o.augment is None else bool(o.augment) and not text  # text: _augment_text
    cfg = TrainConfig(epochs=o.epochs, batch_size=o.batch_size, lr=o.lr, temperature=o.temperature, alpha=o.alpha,
                      seed=o.seed, method=o.method, feature_map=list(o.feature_map), patience=o.patience,
                      augment=augment, cache=o.cache, cache_max_bytes=int(o.max_memory_mb * 2**20),
                      device=o.device, kind=kind, activation=activation)

    warmed: list[float] = []  # seconds of training between pruning steps (in the result's seconds)

    def warm(model, epochs: int) -> None:  # a few epochs between pruning steps: no checkpoints, no held-out score
        warmed.append(Distiller(model, tmodel, replace(cfg, epochs=epochs, patience=0, student_probs=True),
                                ds.x_train, ds.y_train, label="prune step", show_progress=show_progress).fit().seconds)
    smodel, rec, sized, init_used, s_output = _student(o, ds, tmodel, t_out.shape[-1], num_classes, prof,
                                                       show_progress, warm)
    student_probs = rec["family"] == "prune"  # the teacher cut keeps its own activation; the others emit logits
    if activation != "none" and not student_probs:
        rec["head"] = activation  # added after the logits by every later step (models.inference.Adapted)
    groups = {}
    if not o.feature_map and rec["family"] == "hf" and needs_features(parse(o.method)):
        from ..models.hf import feature_groups

        groups = feature_groups(unwrap(smodel), unwrap(tmodel), [t.name for t in parse(o.method)])
    steps = rec["kwargs"].get("steps", 1) if rec["family"] == "prune" else 1
    cfg = replace(cfg, feature_groups=groups, student_probs=student_probs, epochs=pruning_epochs(o.epochs, steps)[1])
    # one writer per run directory (under torchrun the ranks are one distill: rank 0 holds the lock)
    lock = step_lock(out, "distill", create=True) if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext()
    with lock:
        run = RunDir.create(out)
        if not o.resume:
            removed = run.invalidate("distill", o.force)
            if removed:
                ds.notes.append(f"removed the old student's later steps: {', '.join(removed)}")
            (run / "metrics.jsonl").unlink(missing_ok=True)
        val = (ds.x_val, ds.y_val) if ds.x_val is not None else None
        test = (ds.x_test, ds.y_test)
        trec = {**trec, "spec": _abs_spec(trec["spec"]), "input_names": ds.input_names, "output": t_output}
        if trec.get("arch"):
            trec["arch"] = _abs_spec(trec["arch"])
        # later steps import the teacher's (and a factory student's) code only as recorded here, unchanged
        trec["code"] = trust.stamp(*trust.teacher_specs(trec["spec"], trec.get("arch")),
                                   extra=trust.signed_fields(trec))
        if rec["family"] == "entrypoint":
            rec["code"] = trust.stamp(rec["kwargs"]["spec"])
        fingerprint = {"teacher": trec, "data": ds.summary(), "student": rec}
        trainer = Distiller(smodel, tmodel, cfg, ds.x_train, ds.y_train, val=val, test=test, run_dir=run.path,
                            label="distil", show_progress=show_progress, fingerprint=fingerprint)
        say(f"training {students.spec_of(rec)} for {cfg.epochs} epochs ({o.method})")
        res = trainer.fit(resume=o.resume)
        if trainer.rank != 0:
            return None  # type: ignore[return-value]  (rank 0 writes the artifacts)
        _save_student(run / "student.pt", smodel, rec)
        eval_sha = _save_eval(run, ds, o.seed)

        deployed = adapt(unwrap(smodel), ds.input_names, rec.get("output"), ds.constants, rec.get("head")) \
            if rec.get("head") else smodel
        s_logits, t_logits = predict(deployed, ds.x_test), predict(tmodel, ds.x_test)
        scored = "sigmoid" if activation == "sigmoid" else kind
        has_labels = ds.y_test is not None and scored == "logits"
        teacher_acc = accuracy(t_logits, ds.y_test) if has_labels else None
        student_acc = accuracy(s_logits, ds.y_test) if has_labels else None
        sp, tp = students.count_params(smodel), students.count_params(tmodel)
        sf, tf = (students.count_flops(m, ds.input_shape) if not ds.input_names else 0 for m in (smodel, tmodel))
        io = ModelIO.from_arrays(data_mod.arrays(data_mod.take(ds.x_test, slice(0, 2))) if ds.input_names
                                 else {"input": ds.x_test[:2]},
                                 {rec.get("output_name") or s_output or "logits": s_logits[:2]})
        result = DistillResult(run=str(run.path), student=rec, student_params=sp, teacher_params=tp,
                               param_ratio=tp / sp, teacher_accuracy=teacher_acc, student_accuracy=student_acc,
                               retention=(student_acc / teacher_acc) if teacher_acc else None,
                               agreement=_agreement(s_logits, t_logits, scored, _mask(ds.x_test)),
                               agreement_metric=_METRIC[scored],
                               nn_agreement=nn_agreement(t_logits, s_logits) if kind == "embedding" else None,
                               epochs=len(res.history), seconds=res.seconds + sum(warmed),
                               profile=prof.name if prof else None,
                               method=o.method, student_flops=sf, teacher_flops=tf, cache=res.cache,
                               best_epoch=res.best_epoch, stopped_early=res.stopped_early,
                               resumed_from=res.resumed_from,
                               init=init_used, sizing=sized.to_dict() if sized else None, notes=list(ds.notes),
                               next=f"edgekd export {shlex.quote(str(run.path))}")
        result.verdict = verdict(result)
        data_rec = {**ds.summary(), "spec": _abs_spec(ds.spec)}
        run.record("distill", {"teacher": trec, "data": data_rec, "data_options": asdict(opts), "notes": ds.notes,
                               "student": rec, "io": io.to_dict(), "init": init_used,
                               "sizing": sized.to_dict() if sized else None,
                               "profile": prof.summary() if prof else None, "options": asdict(o), "config": asdict(cfg),
                               "feature_map": res.feature_map, "figures": result.to_dict(),
                               "sha256": {"student.pt": sha256(run / "student.pt"), "eval.npz": eval_sha}})
        return result
