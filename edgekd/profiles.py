"""Device profiles: what a target can do, loaded from TOML and validated field by field.

A profile is a TOML file in the package's `profiles/` folder (or any path). Every number cites its source
in `[sources]` (the longest matching dotted prefix counts), either a datasheet/benchmark or
`measured: edgekd profiles calibrate, <date>`. Bad files fail with one line naming the file, the field,
the expected and the actual value.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from .errors import UsageError
from .files import read_text
from .latency.roofline import COMPUTE_CLASSES

KNOWN_ISA = {"neon", "fp16", "dotprod", "i8mm", "sve", "sve2", "sme", "bf16",
             "sse4_2", "avx", "avx2", "fma", "avx512", "avx512_vnni", "avx_vnni", "amx"}
KNOWN_EPS = {"CPUExecutionProvider", "XnnpackExecutionProvider", "NnapiExecutionProvider",
             "QNNExecutionProvider", "CoreMLExecutionProvider", "CUDAExecutionProvider",
             "TensorrtExecutionProvider", "OpenVINOExecutionProvider", "DmlExecutionProvider"}
INT8_PRESETS = {"s8s8", "u8s8", "u8s8-reduce-range", "u8u8"}

_POS = (0.0, None, False)   # (min, max, min inclusive)
_NONNEG = (0.0, None, True)
_FRACTION = (0.0, 1.0, True)

# dotted field -> (type, bounds or allowed set)
FIELDS: dict[str, tuple[type, Any]] = {
    "name": (str, None), "title": (str, None),
    "cpu.arch": (str, {"arm64", "x86_64"}),
    "cpu.cores": (int, (0.0, 4096.0, False)), "cpu.freq_ghz": (float, _POS),
    "cpu.isa": (list, KNOWN_ISA),
    "cpu.fp32_gflops_per_core": (float, _POS), "cpu.int8_gops_per_core": (float, _POS),
    "memory.ram_mb": (float, _POS), "memory.bandwidth_gbps": (float, _POS),
    "cost.overhead_us": (float, _NONNEG), "cost.int8_overhead_us": (float, _NONNEG),
    "cost.run_overhead_us": (float, _NONNEG),
    "cost.serial_fraction": (float, _FRACTION), "cost.parallel_grain_us": (float, _NONNEG),
    # > 1 is allowed: small tensors stay in cache and move faster than DRAM bandwidth
    **{f"cost.bandwidth_efficiency.{m}": (float, (0.0, 20.0, False))
       for m in (*COMPUTE_CLASSES, "eltwise", "norm", "datamove")},
    **{f"cost.efficiency.{d}.{c}": (float, (0.0, 1.0, False)) for d in ("fp32", "int8") for c in COMPUTE_CLASSES},
    "runtime.execution_providers": (list, KNOWN_EPS),
    "runtime.int8_preset": (str, INT8_PRESETS),
    "budgets.latency_ms": (float, _POS), "budgets.memory_mb": (float, _POS),
}
# optional, checked when present: the caches a core sees (L2 per core, or the share of a shared one a core
# can fill; L3 or system cache, 0 when there is none) split a node's cost between cache and DRAM
OPTIONAL_FIELDS: dict[str, tuple[type, Any]] = {"cpu.l2_kb": (float, _POS), "cpu.l3_kb": (float, _NONNEG)}
OPTIONAL = {"aliases", "description", "base", "sources", "reference", "calibration", "kernels", "runtime.notes"}


@dataclass
class Profile:
    """A validated device profile; `data` is the parsed TOML, `path` where it came from."""

    data: dict
    path: Path
    requested: str | None = None  # the name the user asked for (an alias resolves here)

    def get(self, dotted: str) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            node = node[part]
        return node

    @property
    def name(self) -> str:
        return self.data["name"]

    # typed accessors: what the rest of edgekd reads (validated by `parse`)
    @property
    def cores(self) -> int:
        return int(self.get("cpu.cores"))

    @property
    def arch(self) -> str:
        return self.get("cpu.arch")

    @property
    def isa(self) -> list[str]:
        return list(self.get("cpu.isa"))

    @property
    def ram_mb(self) -> float:
        return float(self.get("memory.ram_mb"))

    @property
    def int8_preset(self) -> str:
        return self.get("runtime.int8_preset")

    @property
    def execution_providers(self) -> list[str]:
        return list(self.get("runtime.execution_providers"))

    @property
    def predicts(self) -> str:
        """The execution provider the latency model describes (a CPU roofline: the CPU EP unless it says)."""
        return self.data.get("runtime", {}).get("models_ep", "CPUExecutionProvider")

    @property
    def latency_budget_ms(self) -> float:
        return float(self.get("budgets.latency_ms"))

    @property
    def memory_budget_mb(self) -> float:
        return float(self.get("budgets.memory_mb"))

    @property
    def calibration(self) -> dict:
        """The `[calibration]` section of a profile measured by `edgekd profiles calibrate` ({} if none)."""
        return self.data.get("calibration") or {}

    @property
    def calibrated(self) -> bool:
        return "median_abs_error" in self.calibration

    @property
    def median_error(self) -> float:
        """The calibration's median relative error on whole models where it measured them (leave one network
        out), else on its chains and blocks (0 for a datasheet profile: unknown, not zero)."""
        cal = self.calibration
        return float(cal.get("whole_model_median_error", cal.get("median_abs_error", 0.0)))

    @property
    def measured_here(self) -> bool:
        """Calibrated on this machine: its predictions can be checked against measurements taken here."""
        import platform

        host = self.calibration.get("host")
        return host is not None and host == platform.node()

    @property
    def kernels(self) -> dict:
        return self.data.get("kernels") or {}

    @property
    def is_alias(self) -> bool:
        return self.requested is not None and self.requested != self.name

    def source(self, dotted: str) -> str | None:
        """The source of a field: the longest dotted prefix that `[sources]` names."""
        sources = self.data.get("sources", {})
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            key = ".".join(parts[:i])
            if key in sources:
                return sources[key]
        return None

    def summary(self) -> dict:
        return {"name": self.name, "title": self.data["title"], "aliases": self.data.get("aliases", []),
                "cores": self.cores, "isa": self.isa, "execution_providers": self.execution_providers,
                "predicts": self.predicts, "int8_preset": self.int8_preset, "latency_budget_ms": self.latency_budget_ms,
                "memory_budget_mb": self.memory_budget_mb, "path": str(self.path)}


def _builtin_dir():
    """The built-in profiles: package data in a wheel or an editable install (`edgekd.profile_data`), else the
    `profiles/` folder beside the package in a plain source copy (edgekd on PYTHONPATH, as on a device)."""
    try:
        return resources.files("edgekd.profile_data")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "profiles"


def builtin_files() -> dict[str, Any]:
    return {p.name[:-5]: p for p in _builtin_dir().iterdir() if p.name.endswith(".toml")}


def _aliases() -> dict[str, str]:
    out = {}
    for name, p in builtin_files().items():
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError:
            continue
        for alias in data.get("aliases", []):
            out[alias] = name
    return out


def known_names() -> list[str]:
    return sorted([*builtin_files(), *_aliases()])


def load(name_or_path: str) -> Profile:
    """Load a profile by built-in name, alias, or path to a .toml file."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.is_file():
        if not path.is_file():
            what = "is not a regular file" if path.exists() else "does not exist"
            raise UsageError(f"profile file {path} {what}", "check the path passed to --profile")
        return Profile(parse(read_text(path, "save the profile as UTF-8 TOML (edgekd profiles show NAME prints "
                                             "one)"), str(path)), path, None)
    files, aliases = builtin_files(), _aliases()
    target = aliases.get(name_or_path, name_or_path)
    if target not in files:
        names = known_names()
        close = difflib.get_close_matches(name_or_path, names, n=1, cutoff=0.4)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(f"unknown profile {name_or_path!r} (known: {', '.join(names)})",
                         f"{hint}or pass a path to a .toml profile")
    p = files[target]
    return Profile(parse(p.read_text(encoding="utf-8"), f"profiles/{target}.toml"), Path(str(p)), name_or_path)


def list_profiles() -> list[Profile]:
    return [load(name) for name in sorted(builtin_files())]


def parse(text: str, where: str) -> dict:
    """Parse and validate profile TOML text; every problem is a one-line UsageError naming `where`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:  # message: "Invalid value (at line 2, column 5)"
        msg, _, at = str(e).partition(" (at ")
        where_in = f" at {at.rstrip(')')}" if at else ""
        raise UsageError(f"{where}: TOML syntax error{where_in}: {msg}",
                         "fix the TOML syntax (strings in quotes, one key = value per line)") from None
    except RecursionError:  # tomllib recurses per nested array, inline table or dotted key
        raise UsageError(f"{where}: nests arrays or tables deeper than Python can parse",
                         "a profile is flat tables of numbers; edgekd profiles show NAME prints one") from None
    validate(data, where)
    return data


def _lookup(data: dict, dotted: str) -> tuple[bool, Any]:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def validate(data: dict, where: str) -> None:
    for field, (typ, rule) in FIELDS.items():
        found, value = _lookup(data, field)
        if not found:
            raise UsageError(f"{where}: missing field `{field}`",
                             "add it (see `edgekd profiles show raspberry-pi-4` for a complete profile)")
        _check(where, field, value, typ, rule)
    for field, (typ, rule) in OPTIONAL_FIELDS.items():
        found, value = _lookup(data, field)
        if found:
            _check(where, field, value, typ, rule)
    _check_calibration(data.get("calibration"), where)
    found, ep = _lookup(data, "runtime.models_ep")
    if found:  # optional: which EP the predictions model
        _check(where, "runtime.models_ep", ep, str, KNOWN_EPS)
    for alias in data.get("aliases", []) if isinstance(data.get("aliases", []), list) else [None]:
        if not isinstance(alias, str):
            raise UsageError(f"{where}: `aliases` must be a list of strings", 'e.g. aliases = ["raspberry-pi"]')
    sources = data.get("sources", {})
    if not isinstance(sources, dict):
        raise UsageError(f"{where}: `sources` must be a table of field = \"source\"",
                         'e.g. [sources] "cpu.cores" = "datasheet: ..."')
    if "kernels" in data:  # a calibrated profile's measured kernel tables
        from .latency.kernels import from_profile

        from_profile(data, where, 1)
    probe = Profile(data, Path(where))
    for field, (typ, _) in [*FIELDS.items(), *((f, r) for f, r in OPTIONAL_FIELDS.items() if _lookup(data, f)[0])]:
        if typ in (int, float) and not probe.source(field):
            raise UsageError(f"{where}: field `{field}` has no source in [sources]",
                             f'add "{field}" = "datasheet: ..." or "measured: edgekd profiles calibrate, DATE"')


def _check_calibration(cal: Any, where: str) -> None:
    """`[calibration]` (written by `profiles calibrate`): text for date and host, thread counts, and finite
    non-negative figures for the rest."""
    if cal is None:
        return
    if not isinstance(cal, dict):
        raise UsageError(f"{where}: `calibration` must be a table, got {cal!r}"[:200],
                         "rerun edgekd profiles calibrate")
    def figures(v) -> bool:  # finite non-negative numbers, possibly in tables (int8_preset_ms)
        if isinstance(v, dict):
            return all(figures(x) for x in v.values())
        if isinstance(v, list):
            return all(figures(x) for x in v)
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0

    for k, v in cal.items():
        if k in ("date", "host", "onnxruntime"):
            ok = isinstance(v, str)
        elif k.endswith("_bias"):  # a signed figure: predictions above (+) or below (-) the measurements
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        elif k == "threads":
            ok = isinstance(v, list) and all(isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in v)
        else:
            ok = figures(v) or (isinstance(v, dict) and all(isinstance(x, (str, dict)) or figures(x)
                                                             for x in v.values()))
        if not ok:
            raise UsageError(f"{where}: field `calibration.{k}` has a bad value {v!r}"[:200],
                             "rerun `edgekd profiles calibrate`, or remove the [calibration] section")


def _check(where: str, field: str, value: Any, typ: type, rule: Any) -> None:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or isinstance(value, bool):
        raise UsageError(f"{where}: field `{field}` must be a {typ.__name__}, got {value!r}",
                         f"write `{field.split('.')[-1]} = ...` with a {typ.__name__} value")
    if typ is list:
        bad = [v for v in value if not isinstance(v, str) or v not in rule]
        if bad:
            close = difflib.get_close_matches(str(bad[0]), sorted(rule), n=1)
            raise UsageError(f"{where}: field `{field}` has unknown value {bad[0]!r} "
                             f"(known: {', '.join(sorted(rule))})",
                             f"did you mean {close[0]!r}?" if close else "use one of the known values")
    elif isinstance(rule, set):
        if value not in rule:
            raise UsageError(f"{where}: field `{field}` must be one of {', '.join(sorted(rule))}, got {value!r}",
                             "use one of those values")
    elif isinstance(rule, tuple):
        lo, hi, inclusive = rule
        if not math.isfinite(value) or (value < lo if inclusive else value <= lo) or (hi is not None and value > hi):
            rng = f"{'>=' if inclusive else '>'} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
            raise UsageError(f"{where}: field `{field}` must be {rng}, got {value!r}", "fix the value")
