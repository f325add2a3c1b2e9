"""The roofline core of the latency model: a per-op-class roofline with efficiency factors, per-node
dispatch overhead, int8-vs-fp32 kernels and thread scaling. It sits at the bottom of edgekd.latency and
imports nothing from above it: profiles, kernel tables and the predictor all build on it.

Per fused node, at one thread:
    t1 = flops / (peak[dtype] * eff[dtype][class]) + bytes / (bandwidth * bw_eff[class])
(a smooth roofline: the sum of the compute and memory terms, so both regimes are priced and the
model stays linear in its parameters, which calibration fits by least squares). With n threads a
node uses n_eff = min(n, cores, max(1, t1 / grain)) threads (onnxruntime only splits work that is large
enough) and takes t1 * (serial + (1 - serial) / n_eff). Each node adds `overhead_us` (plus
`int8_overhead_us` when quantized), each run `run_overhead_us`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .graph import NodeCost

COMPUTE_CLASSES = ("conv", "dwconv", "gemm")  # FLOP-bound op classes; the rest are bandwidth-bound
MEMORY_TERMS = (*COMPUTE_CLASSES, "eltwise", "norm", "datamove")  # every class has a bytes term


@dataclass
class Params:
    """The cost-model parameters, in seconds per unit (what calibration fits)."""

    sec_per_flop: dict[str, dict[str, float]]      # dtype -> class -> s/FLOP
    sec_per_byte: dict[str, float]                  # memory term -> s/byte
    node_s: float
    int8_node_s: float     # extra dispatch cost of a quantized node (requantization set-up, Q/DQ)
    run_s: float
    serial: float
    grain_s: float
    cores: int

    @classmethod
    def from_profile(cls, p: Any) -> Params:
        """From a profile (anything with `get(dotted_field)`)."""
        peak = {"fp32": p.get("cpu.fp32_gflops_per_core") * 1e9, "int8": p.get("cpu.int8_gops_per_core") * 1e9}
        bw = p.get("memory.bandwidth_gbps") * 1e9
        return cls(
            sec_per_flop={d: {c: 1.0 / (peak[d] * p.get(f"cost.efficiency.{d}.{c}")) for c in COMPUTE_CLASSES}
                          for d in ("fp32", "int8")},
            sec_per_byte={m: 1.0 / (bw * p.get(f"cost.bandwidth_efficiency.{m}")) for m in MEMORY_TERMS},
            node_s=p.get("cost.overhead_us") * 1e-6, int8_node_s=p.get("cost.int8_overhead_us") * 1e-6,
            run_s=p.get("cost.run_overhead_us") * 1e-6,
            serial=p.get("cost.serial_fraction"), grain_s=p.get("cost.parallel_grain_us") * 1e-6,
            cores=int(p.get("cpu.cores")))


def single_thread_s(n: NodeCost, prm: Params) -> float:
    """A node's compute + memory time on one thread, without dispatch overhead."""
    if n.op_class == "free":
        return 0.0
    if n.op_class in COMPUTE_CLASSES:
        return n.flops * prm.sec_per_flop[n.dtype][n.op_class] + n.bytes * prm.sec_per_byte[n.op_class]
    return n.bytes * prm.sec_per_byte[n.op_class]


def thread_factor(t1: float, threads: int, prm: Params) -> float:
    """Amdahl with a work-size cut-off: small nodes stay on one thread."""
    n = min(int(threads), prm.cores)
    if n <= 1:
        return 1.0
    n_eff = min(float(n), max(1.0, t1 / prm.grain_s)) if prm.grain_s > 0 else float(n)
    return prm.serial + (1.0 - prm.serial) / n_eff


def is_int8(n: NodeCost) -> bool:
    return n.dtype == "int8" or n.op_type in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")


def node_seconds(n: NodeCost, prm: Params, threads: int) -> float:
    t1 = single_thread_s(n, prm)
    return t1 * thread_factor(t1, threads, prm) + prm.node_s + (prm.int8_node_s if is_int8(n) else 0.0)
