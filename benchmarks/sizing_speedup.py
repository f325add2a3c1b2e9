"""Is the sized student faster than its teacher (issue 14)? Three teachers, three profiles, two budgets each.

Teachers: the demo's digits CNN (8 x 8), a wider CNN on 32 x 32 RGB images, and an MLP on tabular data (the
data sets are made here: learnable, no download). Profiles: raspberry-pi-4, jetson-orin-nano and this host,
calibrated first (`edgekd profiles calibrate`). Budgets: the teacher's own predicted latency on the profile
(only "faster than the teacher" binds) and half of it. For each: `edgekd distill --profile P --budget-ms B`,
then the chosen student's predicted speed-up over the teacher, its parameter ratio and retention; on the
host profile also export, quantize and bench, and the measured speed-up of the model bench says to ship.
Target: every chosen student predicted faster, >= 2x smaller, measured faster on the host, retention >= 97%.
Usage: python benchmarks/sizing_speedup.py [--quick]  ->  results/sizing_speedup.json (about 15 minutes)
"""
from __future__ import annotations

import argparse
import textwrap
import time

import numpy as np
from common import ARCH, OUT, demo_teacher, write_result

import edgekd
from edgekd.api.size import price_teacher
from edgekd.deploy.measure import host_info
from edgekd.errors import EdgekdError

NETS = textwrap.dedent('''
    import pathlib
    import torch
    import torch.nn as nn

    class WideCNN(nn.Module):
        """A 32 x 32 RGB classifier: three conv stages of 48/96/192 channels."""
        def __init__(self, classes=4):
            super().__init__()
            def stage(cin, cout):
                return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
            self.body = nn.Sequential(*stage(3, 48), *stage(48, 96), *stage(96, 192), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten(), nn.Linear(192, classes))
        def forward(self, x):
            return self.body(x)

    def tabular_mlp(features=32, classes=5):
        return nn.Sequential(nn.Linear(features, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                             nn.Linear(512, classes))

    def wide_cnn():
        m = WideCNN()
        m.load_state_dict(torch.load(pathlib.Path(__file__).with_name("wide_cnn.pt"), weights_only=True))
        return m

    def tabular():
        m = tabular_mlp()
        m.load_state_dict(torch.load(pathlib.Path(__file__).with_name("tabular.pt"), weights_only=True))
        return m
''')


def images(n: int = 1600, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four classes of noisy oriented stripes (0, 45, 90, 135 degrees) in random colours."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    y = rng.integers(0, 4, n)
    angle = y * np.pi / 4 + rng.normal(0, 0.15, n)
    freq = rng.uniform(3, 6, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    wave = np.sin(2 * np.pi * freq[:, None, None] * (np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None]
                                                      * yy) + phase[:, None, None])
    colour = rng.uniform(0.3, 1.0, (n, 3, 1, 1))
    x = colour * wave[:, None] + rng.normal(0, 0.6, (n, 3, size, size))
    return x.astype(np.float32), y.astype(np.int64)


def tabular_data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n, n_features=32, n_informative=16, n_classes=5, n_clusters_per_class=2,
                               class_sep=1.5, random_state=seed)
    return x.astype(np.float32), y.astype(np.int64)


def teachers(quick: bool) -> dict[str, dict]:
    """Train (or reuse) the three teachers; returns name -> {teacher, arch, data, epochs}."""
    import torch

    from edgekd.kd.trainer import TrainConfig, train

    root = OUT / "sizing_speedup"
    root.mkdir(parents=True, exist_ok=True)
    (root / "nets.py").write_text(NETS)
    ns: dict = {}
    exec(NETS, ns)
    for name, (make, data, epochs) in {"wide_cnn": (ns["WideCNN"], images(), 12),
                                       "tabular": (ns["tabular_mlp"], tabular_data(), 30)}.items():
        np.savez(root / f"{name}.npz", x=data[0], y=data[1])
        if not (root / f"{name}.pt").is_file():
            torch.manual_seed(0)
            model = make()
            n = int(len(data[0]) * 0.8)  # train on the part distill will train on (edgekd's split differs; fine)
            train(model, data[0][:n], data[1][:n], TrainConfig(epochs=epochs, lr=3e-3), show_progress=False)
            torch.save(model.state_dict(), root / f"{name}.pt")
    return {"digits_cnn": {"teacher": demo_teacher(), "arch": ARCH, "data": "digits", "epochs": 20 if quick else 40},
            "wide_cnn": {"teacher": f"{root}/nets.py:wide_cnn", "arch": None, "data": str(root / "wide_cnn.npz"),
                         "epochs": 8 if quick else 20},
            "tabular": {"teacher": f"{root}/nets.py:tabular", "arch": None, "data": str(root / "tabular.npz"),
                        "epochs": 20 if quick else 40}}


def teacher_ms(t: dict, profile: str) -> float:
    """The teacher's predicted int8 latency on the profile, priced as sizing prices it."""
    from edgekd import data as data_mod
    from edgekd.models.teachers import load_teacher

    prof = edgekd.load_profile(profile)
    ds = data_mod.load(t["data"])
    model = load_teacher(t["teacher"], t["arch"])[0]
    return price_teacher(model, ds.input_shape, prof, prof.cores, "int8", ds.x_train[:64]).predicted_ms


def one(name: str, t: dict, profile: str, budget_ms: float, host: bool) -> dict:
    run = OUT / "sizing_speedup" / "runs" / f"{name}-{profile.rsplit('/', 1)[-1]}-{budget_ms:.4g}"
    row = {"teacher": name, "profile": profile.rsplit("/", 1)[-1], "budget_ms": budget_ms}
    t0 = time.perf_counter()
    try:
        d = edgekd.distill(t["teacher"], t["data"], run, arch=t["arch"], profile=profile, budget_ms=budget_ms,
                           epochs=t["epochs"], lr=0.01, force=True, show_progress=False)
    except EdgekdError as e:
        return {**row, "error": e.one_line(), "seconds": time.perf_counter() - t0}
    sz = d.sizing
    row.update(student=sz["chosen"]["spec"], family=sz["family"], predicted_speedup=sz["teacher"]["predicted_ms"]
               / sz["chosen"]["predicted_ms"], teacher_predicted_ms=sz["teacher"]["predicted_ms"],
               student_predicted_ms=sz["chosen"]["predicted_ms"], param_ratio=d.param_ratio, retention=d.retention)
    if host:
        edgekd.export(run)
        try:
            edgekd.quantize(run, max_drop=0.02)
        except EdgekdError as e:
            row["quantize"] = e.one_line()
        b = edgekd.bench(run, threads=sz["threads"], runs=300, memory=False).report
        m, s = b["models"], b["summary"]
        ship = "student_int8" if s.get("int8_speedup_p50", 0) >= 1 else "student_fp32"
        row.update(shipped=ship, measured_speedup=m["teacher_onnx"]["latency_ms"]["p50"] / m[ship]["latency_ms"]["p50"],
                   measured_retention=m[ship]["retention"], int8_speedup=s.get("int8_speedup_p50"))
    row["seconds"] = time.perf_counter() - t0
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer epochs and a quick calibration (a smoke test)")
    args = ap.parse_args()
    host_toml = OUT / "sizing_speedup" / "host.toml"
    host_toml.parent.mkdir(parents=True, exist_ok=True)
    if not host_toml.is_file():
        edgekd.calibrate(str(host_toml), name="host", quick=args.quick)
    ts = teachers(args.quick)
    rows = []
    for name, t in ts.items():
        for profile in ("raspberry-pi-4", "jetson-orin-nano", str(host_toml)):
            base = teacher_ms(t, profile)
            for budget in (base, base / 2):
                rows.append(one(name, t, profile, round(budget, 6), profile == str(host_toml)))
    ok = [r for r in rows if "error" not in r]
    checks = {
        "chosen_predicted_faster": all(r["predicted_speedup"] > 1 for r in ok),
        "at_least_2x_smaller": all(r["param_ratio"] >= 2 for r in ok),
        "measured_faster_on_host": all(r["measured_speedup"] > 1 for r in ok if "measured_speedup" in r),
        "retention_97": all((r["retention"] or 0) >= 0.97 for r in ok),
    }
    print("\n| teacher | profile | budget ms | student | pred. speed-up | params ratio | retention | measured "
          "speed-up (shipped) |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['teacher']} | {r['profile']} | {r['budget_ms']:.3g} | refused: {r['error'][:90]} |||||")
            continue
        meas = f"{r['measured_speedup']:.2f}x ({r['shipped']})" if "measured_speedup" in r else "–"
        print(f"| {r['teacher']} | {r['profile']} | {r['budget_ms']:.3g} | {r['student']} | "
              f"{r['predicted_speedup']:.2f}x | {r['param_ratio']:.1f} | {r['retention']:.1%} | {meas} |")
    print("\nchecks:", checks)
    host = host_info()
    print(f"host: {host.get('cpu')} ({host.get('cpu_count')} CPUs; {', '.join(host.get('int8_flags', []))})")
    write_result("sizing_speedup", {"benchmark": "sizing_speedup", "host": host, "rows": rows, "checks": checks})


if __name__ == "__main__":
    main()
