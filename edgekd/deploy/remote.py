"""`--on ssh://user@host[:port][?python=PATH]`: run `bench` or `profiles calibrate` on the real device.

edgekd builds its runtime wheel (pure Python, the built-in profiles inside), copies it with the model(s) and data
into a fresh temp dir on the device, and runs the step there with the device's own python3, onnxruntime, onnx and
numpy: the wheel is imported straight from the file (a wheel is a zip), so nothing is installed and, unless
`keep`, nothing is left behind. It uses the system `ssh` with the user's own keys and config (BatchMode: a key
that needs a password is refused, not prompted for); EDGEKD_SSH_OPTIONS adds ssh options (e.g. `-F FILE`,
`-i KEY`). Every failure is one line naming the device.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from ..errors import EdgekdError, UsageError

CONNECT_TIMEOUT_S = 10   # ?connect=S: seconds to reach the device
SILENCE_TIMEOUT_S = 300  # ?silence=S: seconds a job may say nothing (it beats every HEARTBEAT_S) before it is hung
HEARTBEAT_S = 15
HEARTBEAT = "edgekd-device-job: alive"
RUN_TIMEOUT_S = 3600
RUNTIME_NEEDS = {"onnxruntime": "onnxruntime", "onnx": "onnx", "numpy": "numpy"}

# what the device has, from a python3 that may have nothing of edgekd's (stdlib only, one JSON line)
FACTS = r"""
import json, os, platform, shutil, sys, tempfile
out = {"python": platform.python_version(), "executable": sys.executable, "machine": platform.machine(),
       "system": platform.system(), "abi": sys.implementation.cache_tag,
       "os": platform.platform(), "node": platform.node(), "cpu_count": os.cpu_count(),
       "free_tmp_mb": shutil.disk_usage(tempfile.gettempdir()).free // 2**20}
try:
    text = open("/proc/cpuinfo").read()
    out["cpu"] = next((l.split(":", 1)[1].strip() for l in text.splitlines()
                       if l.startswith(("model name", "Model", "Hardware"))), "")
    out["flags"] = sorted(set(next((l.split(":", 1)[1].split() for l in text.splitlines()
                                    if l.startswith(("flags", "Features"))), [])))
except OSError:
    pass
for m in ("onnxruntime", "onnx", "numpy"):
    try:
        out[m] = __import__(m).__version__
    except Exception:
        out[m] = None
cache = os.path.join(os.environ.get("EDGEKD_HOME") or os.path.expanduser("~/.edgekd"), "cache")
out["cache"] = sorted(os.listdir(cache)) if os.path.isdir(cache) else None
print(json.dumps(out))
"""


class RemoteError(EdgekdError):
    """A failure on or reaching the device (exit 1); the message starts with the device's name."""


# where `edgekd device setup` puts edgekd on the device: a venv, the wheels it came from, and the models cache
DEVICE_HOME = "${EDGEKD_HOME:-$HOME/.edgekd}"
VENV_PYTHON = f"{DEVICE_HOME}/venv/bin/python"


@dataclass(frozen=True)
class Device:
    user: str | None
    host: str
    port: int | None
    python: str | None = None  # ?python=PATH; None: the venv `edgekd device setup` made, else python3
    connect_s: float = CONNECT_TIMEOUT_S
    silence_s: float = SILENCE_TIMEOUT_S

    @property
    def shell_python(self) -> str:
        """The python to run there, as a shell word: the asked one, else the set-up venv's, else python3."""
        if self.python:
            return shlex.quote(self.python)
        return f'"$(p="{VENV_PYTHON}"; [ -x "$p" ] && echo "$p" || echo python3)"'

    @property
    def name(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}{':' + str(self.port) if self.port else ''}"

    @property
    def dest(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host


def parse(url: str) -> Device:
    """`ssh://pi@raspberrypi.local:2222?python=/home/pi/venv/bin/python&connect=10&silence=300` -> Device;
    anything else is refused."""
    u = urlparse(url)
    try:
        port = u.port
    except ValueError:
        port = -1
    if u.scheme != "ssh" or not u.hostname or port == -1 or (u.path not in ("", "/")):
        raise UsageError(f"--on {url!r} is not ssh://[user@]host[:port][?python=PATH]",
                         "e.g. --on ssh://pi@raspberrypi.local or --on ssh://pi@10.0.0.5:2222")
    query = parse_qs(u.query)
    python = (query.get("python") or [None])[0]
    return Device(u.username, u.hostname, port, python, _seconds(query, "connect", CONNECT_TIMEOUT_S, url),
                  _seconds(query, "silence", SILENCE_TIMEOUT_S, url))


def _seconds(query: dict, key: str, default: float, url: str) -> float:
    raw = (query.get(key) or [None])[0]
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 86400:
        raise UsageError(f"--on {url!r}: {key}={raw!r} is not a number of seconds in [1, 86400]",
                         f"e.g. ?{key}={default:g}")
    return value


def _ssh_base(dev: Device) -> list[str]:
    opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={dev.connect_s:g}",
            # a link that died mid-job (the device powered off, Wi-Fi gone) is noticed by ssh itself
            "-o", f"ServerAliveInterval={max(1, int(dev.silence_s // 4))}", "-o", "ServerAliveCountMax=4",
            "-o", "StrictHostKeyChecking=accept-new", *shlex.split(os.environ.get("EDGEKD_SSH_OPTIONS", ""))]
    # `--` ends ssh's options: a "host" like -oProxyCommand=... is a name, never an option
    return ["ssh", *opts, *(["-p", str(dev.port)] if dev.port else []), "--", dev.dest]


def ssh(dev: Device, command: str, stdin: bytes | None = None, timeout: float = 120,
        silence: float | None = None) -> str:
    """Run `command` (a shell line) on the device; its stdout, or a RemoteError with the reason in one line.
    With `silence`, a command that writes nothing (no output, no heartbeat) for that long is stopped as hung."""
    try:
        proc = subprocess.Popen([*_ssh_base(dev), command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise UsageError("no `ssh` command on this machine", "install OpenSSH's client (apt-get install "
                         "openssh-client)") from None
    out, err, why = _watch(proc, stdin, timeout, silence)
    if why:
        raise RemoteError(f"{dev.name}: {why}", "is the device busy or the network down? try `ssh` to it by hand"
                          + ("; a slow device can be given more with ?silence=SECONDS" if silence else ""))
    err = "\n".join(ln for ln in err.decode(errors="replace").splitlines() if ln != HEARTBEAT).strip()
    if proc.returncode == 255:  # ssh's own failure: connection or authentication
        raise _ssh_failure(dev, err)
    if proc.returncode != 0:
        raise RemoteError(f"{dev.name}: {_last_line(err) or f'exit {proc.returncode}'}",
                          _hint_for(err, proc.returncode) or "run the command on the device by hand to see more")
    return out.decode(errors="replace")


def _watch(proc: subprocess.Popen, stdin: bytes | None, timeout: float,
           silence: float | None) -> tuple[bytes, bytes, str | None]:
    """(stdout, stderr, why it was stopped or None): both streams read as they come, so that a job that goes
    quiet is told apart from one that is working."""
    import threading

    chunks: dict[str, list[bytes]] = {"out": [], "err": []}
    last = [time.monotonic()]

    def pump(stream, key):
        for piece in iter(lambda: stream.read1(65536), b""):
            chunks[key].append(piece)
            last[0] = time.monotonic()

    readers = [threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True)]
    for t in readers:
        t.start()
    try:
        if stdin:
            proc.stdin.write(stdin)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    start, why = time.monotonic(), None
    while proc.poll() is None:
        now = time.monotonic()
        if now - start > timeout:
            why = f"no answer in {timeout:g} s"
        elif silence and now - last[0] > silence:
            why = f"the job said nothing for {silence:g} s (it sends a heartbeat every {HEARTBEAT_S} s): it is hung"
        if why:
            proc.kill()
            break
        time.sleep(0.1)
    proc.wait()
    for t in readers:
        t.join(5)
    return b"".join(chunks["out"]), b"".join(chunks["err"]), why


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Warning: Permanently")]
    return lines[-1][:300] if lines else ""


def _ssh_failure(dev: Device, err: str) -> RemoteError:
    line = _last_line(err)
    low = err.lower()
    if "permission denied" in low:
        return RemoteError(f"{dev.name}: the device refused the key ({line})",
                           f"ssh-copy-id {dev.dest} (BatchMode: keys only, no password prompts)")
    if "could not resolve" in low or "name or service not known" in low:
        return RemoteError(f"{dev.name}: unknown host ({line})", "check the name, or use the device's IP address")
    if any(s in low for s in ("connection refused", "timed out", "no route", "unreachable", "closed")):
        return RemoteError(f"{dev.name}: cannot connect ({line})",
                           "is the device on, sshd running and the port right? (ssh://user@host:PORT)")
    if "host key verification failed" in low or "remote host identification has changed" in low:
        return RemoteError(f"{dev.name}: its host key does not match known_hosts ({line})",
                           f"if the device was reinstalled: ssh-keygen -R {dev.host}")
    return RemoteError(f"{dev.name}: ssh failed ({line or 'exit 255'})", "try `ssh` to it by hand")


def _hint_for(err: str, code: int) -> str | None:
    low = err.lower()
    if "no space left" in low:
        return "free space in the device's temp dir (df -h /tmp), or set TMPDIR there"
    if code == 127 or ("python" in low and ("not found" in low or "no such file" in low)):
        return "install Python 3.10+ on the device (apt-get install python3), or pass ?python=PATH"
    return None


def facts(dev: Device, need_runtime: bool = True) -> dict:
    """The device's Python, CPU, ISA flags, cores, OS and onnxruntime, checked for what a run needs (only the
    Python when `need_runtime` is off: `device setup` brings the rest)."""
    out = ssh(dev, f"{dev.shell_python} -c {shlex.quote(FACTS)}")
    try:
        got = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RemoteError(f"{dev.name}: {dev.python or 'python3'} did not answer the facts probe "
                          f"({out.strip()[:120]!r})",
                          "check that it is a CPython 3.10+") from None
    major, minor = (int(x) for x in got["python"].split(".")[:2])
    if (major, minor) < (3, 10):
        raise RemoteError(f"{dev.name}: {got['executable']} is Python {got['python']}; edgekd needs 3.10 or later",
                          "install a newer python3 there, or pass ?python=PATH to one")
    missing = [pkg for mod, pkg in RUNTIME_NEEDS.items() if not got.get(mod)]
    if missing and need_runtime:
        raise RemoteError(f"{dev.name}: {got['executable']} has no {', '.join(missing)}", _install_hint(got, missing))
    return got


def _install_hint(got: dict, missing: list[str]) -> str:
    """What to install on this device, for its platform."""
    machine = got.get("machine", "")
    if machine in ("armv7l", "armv6l", "i686"):
        return (f"onnxruntime publishes no wheels for {machine} (32-bit): use a 64-bit OS on the device, or build "
                "onnxruntime from source there")
    return (f"edgekd device setup ssh://... installs them in a venv there (or on the device: python3 -m pip install "
            f"{' '.join(missing)}, or pass ?python=PATH to a python that has them)")


def _runtime_requirements() -> list[str]:
    """The installed edgekd's own dependencies without its extras (pyproject.toml's, as pip recorded them);
    none for a source copy that was never installed (the wheel then still imports from PYTHONPATH)."""
    from importlib import metadata

    try:
        return [r for r in metadata.requires("edgekd") or [] if "extra ==" not in r]
    except metadata.PackageNotFoundError:
        return []


def runtime_wheel(dest_dir: Path) -> Path:
    """edgekd's runtime as a wheel: every module and the built-in profiles, no dependencies bundled. pip can
    install it; `--on` imports it straight from the file instead (PYTHONPATH=edgekd-*.whl)."""
    import edgekd

    from .. import profiles

    pkg = Path(edgekd.__file__).resolve().parent
    version = edgekd.__version__
    files: dict[str, bytes] = {}
    for f in sorted(pkg.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and f.suffix in (".py", ".typed"):
            files[f"edgekd/{f.relative_to(pkg).as_posix()}"] = f.read_bytes()
    for f in profiles._builtin_dir().iterdir():
        if f.name.endswith((".toml", ".md", ".py")):
            files[f"edgekd/profile_data/{f.name}"] = f.read_bytes()
    info = f"edgekd-{version}.dist-info"
    requires = "".join(f"Requires-Dist: {r}\n" for r in _runtime_requirements())
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: edgekd\nVersion: {version}\n{requires}".encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: edgekd\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{info}/entry_points.txt"] = b"[console_scripts]\nedgekd = edgekd.cli:main\n"
    record = [f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}"
              for n, b in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    path = dest_dir / f"edgekd-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():  # a fixed date: the same edgekd is the same bytes (a device caches it)
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return path


@dataclass
class Staged:
    """What goes to the device: files by their name there, and the job's arguments in those names."""

    files: dict[str, Path]
    target: str
    options: dict


def stage_bench(target: str, options: dict) -> Staged:
    """A run directory's models and eval data (no torch: the teacher is its ONNX), or a plain .onnx with its
    external data, --data and --teacher; a --profile that is a file goes too."""
    from ..files import MANIFEST

    files: dict[str, Path] = {}
    path = Path(target)
    opts = dict(options)
    if path.is_dir():
        for f in path.iterdir():
            if f.is_file() and (f.suffix in (".onnx", ".data", ".npz") or f.name == MANIFEST):
                files[f"run/{f.name}"] = f
        remote_target = "run"
    else:
        remote_target = _with_external(path, "model", files)
    if opts.get("teacher"):
        opts["teacher"] = _with_external(Path(opts["teacher"]), "teacher", files)
    if opts.get("data") and Path(opts["data"]).exists():
        d = Path(opts["data"])
        for f in ([d] if d.is_file() else sorted(x for x in d.rglob("*") if x.is_file())):
            files[f"data/{d.name}/{f.relative_to(d).as_posix()}" if d.is_dir() else f"data/{d.name}"] = f
        opts["data"] = f"data/{d.name}"
    if opts.get("profile") and Path(opts["profile"]).is_file():
        files[f"profile/{Path(opts['profile']).name}"] = Path(opts["profile"])
        opts["profile"] = f"profile/{Path(opts['profile']).name}"
    return Staged(files, remote_target, opts)


def _with_external(model: Path, folder: str, files: dict[str, Path]) -> str:
    """A model and the external-data files beside it that it names, into `folder/`; its name there."""
    from .runtime import check_onnx_file, external_data

    check_onnx_file(model)
    files[f"{folder}/{model.name}"] = model
    for name in external_data(model):
        files[f"{folder}/{name}"] = model.parent / name
    return f"{folder}/{model.name}"


def run_on(url: str, step: str, staged: Staged, keep: bool = False) -> dict:
    """Copy the runtime wheel and `staged` to a temp dir on the device, run `step` there, bring its result
    back. The result carries the device's facts and the overhead (check, copy, run, clean-up) apart from the
    measurements."""
    dev = parse(url)
    t0 = time.perf_counter()
    info = facts(dev)
    overhead = {"check_s": time.perf_counter() - t0}
    with tempfile.TemporaryDirectory() as td:
        wheel = runtime_wheel(Path(td))
        job = {"step": step, "target": staged.target, "options": staged.options}
        send, links = _cached({**staged.files, wheel.name: wheel}, info.get("cache"))
        blob = _tar(send, {"job.json": json.dumps(job).encode()})
        need_mb = 2 * len(blob) / 2**20 + 50  # the copy, and room for what the step writes
        if info.get("free_tmp_mb") is not None and info["free_tmp_mb"] < need_mb:
            raise RemoteError(f"{dev.name}: {info['free_tmp_mb']} MB free in its temp dir, the job needs about "
                              f"{need_mb:.0f} MB", "free space there (df -h /tmp), or set TMPDIR on the device")
        t1 = time.perf_counter()
        remote = ssh(dev, "mktemp -d \"${TMPDIR:-/tmp}/edgekd.XXXXXX\"").strip()
        try:
            ssh(dev, f"tar -C {shlex.quote(remote)} -xf -", stdin=blob, timeout=600)
            overhead["copy_s"] = time.perf_counter() - t1
            overhead["copied_mb"] = len(blob) / 2**20
            overhead["reused_files"] = sum(h in (info.get("cache") or ()) for h in links.values())
            t2 = time.perf_counter()
            cmd = (f"cd {shlex.quote(remote)} && {_link_cached(links)}PYTHONPATH="
                   f"{shlex.quote(remote + '/' + wheel.name)} {shlex.quote(info['executable'])} -m "
                   "edgekd.device_job job.json")
            out = ssh(dev, cmd, timeout=RUN_TIMEOUT_S, silence=dev.silence_s)
            overhead["run_s"] = time.perf_counter() - t2
        finally:
            t3 = time.perf_counter()
            if not keep:
                try:
                    ssh(dev, f"rm -rf {shlex.quote(remote)}")
                except EdgekdError:
                    pass  # the device is gone: nothing more to clean from here
            overhead["cleanup_s"] = time.perf_counter() - t3
    answer = _answer(dev, out)
    return {**answer, "device": {"url": f"ssh://{dev.name}", **info}, "overhead": overhead,
            "kept": remote if keep else None}


def _cached(files: dict[str, Path], cache: list[str] | None) -> tuple[dict[str, Path], dict[str, str]]:
    """On a device `device setup` prepared (it has a models cache), the files to send — each by its content
    hash, once — and the hash of every staged file; elsewhere everything, and no hashes."""
    if cache is None:
        return dict(files), {}
    from ..files import sha256

    have = set(cache)
    links = {name: sha256(path) for name, path in files.items()}
    send = {f"cache/{h}": files[name] for name, h in links.items() if h not in have}
    return send, links


def _link_cached(links: dict[str, str]) -> str:
    """Shell words that move the files just sent into the device's cache and put every staged file in place
    from it (a hard link, else a copy), ending in `&& `; nothing when there is no cache."""
    if not links:
        return ""
    cache = f"{DEVICE_HOME}/cache"
    parts = [f'mkdir -p "{cache}"', f'for f in cache/*; do [ -e "$f" ] && mv -f "$f" "{cache}/"; done; true']
    for name, h in links.items():
        q = shlex.quote(name)
        parts.append(f"mkdir -p \"$(dirname {q})\" && (ln -f \"{cache}/{h}\" {q} 2>/dev/null || "
                     f"cp \"{cache}/{h}\" {q})")
    return " && ".join(parts) + " && "


# pip's platform tags for the devices onnxruntime publishes wheels for
PLATFORMS = {"x86_64": ["manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux_2_17_x86_64"],
             "aarch64": ["manylinux_2_28_aarch64", "manylinux2014_aarch64", "manylinux_2_17_aarch64"],
             "arm64": ["macosx_11_0_arm64", "macosx_14_0_arm64"]}


def setup(url: str, offline: bool = False, system_site_packages: bool = False, progress=None) -> dict:
    """`edgekd device setup ssh://user@host`: a venv on the device (EDGEKD_HOME, default ~/.edgekd/venv) with
    edgekd's runtime wheel and onnxruntime, onnx, numpy, click, rich — from the device's own package index, or
    `offline` (a device without internet) from wheels downloaded here for its platform and Python and copied
    over, or with `system_site_packages` the device's own onnxruntime (a vendor build: Jetson, OpenVINO).
    `--on` then uses that venv without `?python=`, and keeps models in its cache between runs."""
    say = progress or (lambda what: None)
    dev = parse(url)
    base = dataclasses.replace(dev, python=dev.python or "python3")
    t0 = time.perf_counter()
    say("checking the device")
    info = facts(base, need_runtime=False)
    if system_site_packages and not all(info.get(m) for m in RUNTIME_NEEDS):
        missing = [p for m, p in RUNTIME_NEEDS.items() if not info.get(m)]
        raise RemoteError(f"{dev.name}: --system-site-packages, but {info['executable']} has no "
                          f"{', '.join(missing)}", "install them there first, or leave --system-site-packages out")
    with tempfile.TemporaryDirectory() as td:
        wheels = Path(td) / "wheels"
        wheels.mkdir()
        runtime_wheel(wheels)
        if offline:
            say(f"downloading the runtime's wheels here for {info['machine']}, Python {info['python']}")
            _download_wheels(info, wheels)
        blob = _tar({f.name: f for f in sorted(wheels.iterdir())}, {})
        say(f"copying {len(blob) / 2**20:.1f} MB to the device")
        ssh(dev, f'mkdir -p "{DEVICE_HOME}/wheels" && tar -C "{DEVICE_HOME}/wheels" -xf -', stdin=blob,
            timeout=600)
    say("creating the venv and installing edgekd's runtime there")
    venv = f"{shlex.quote(info['executable'])} -m venv {'--system-site-packages ' if system_site_packages else ''}" \
           f'"{DEVICE_HOME}/venv"'
    pip = f'"{VENV_PYTHON}" -m pip install -q --disable-pip-version-check'
    wheel = f'"{DEVICE_HOME}/wheels/edgekd-{_version()}-py3-none-any.whl"'
    how = (f"{pip} --no-deps {wheel}" if system_site_packages else
           f'{pip} --no-index --find-links "{DEVICE_HOME}/wheels" {wheel}' if offline else f"{pip} {wheel}")
    try:
        ssh(dev, f"{venv} && {how} && mkdir -p \"{DEVICE_HOME}/cache\"", timeout=1800)
    except RemoteError as e:
        if "ensurepip" in e.message or "venv" in e.message:
            raise RemoteError(e.message, "on Debian and Raspberry Pi OS: sudo apt-get install python3-venv") from None
        raise
    say("checking the runtime in the venv")
    got = facts(dataclasses.replace(dev, python=None))
    return {"device": f"ssh://{dev.name}", "python": got["executable"], "python_version": got["python"],
            "onnxruntime": got["onnxruntime"], "onnx": got["onnx"], "numpy": got["numpy"],
            "machine": got["machine"], "mode": "system-site-packages" if system_site_packages else
            "offline" if offline else "online", "seconds": round(time.perf_counter() - t0, 1)}


def _version() -> str:
    import edgekd

    return edgekd.__version__


def _download_wheels(info: dict, dest: Path) -> None:
    """The runtime's dependencies as wheels for the device's platform and Python, fetched here."""
    plats = PLATFORMS.get(info.get("machine", ""))
    if not plats:
        raise RemoteError(f"ssh device: no wheels are published for its {info.get('machine')!r} CPU",
                          "install onnxruntime there by hand, then: edgekd device setup --system-site-packages")
    version = "".join(info["python"].split(".")[:2])
    reqs = _runtime_requirements() or ["onnxruntime", "onnx", "numpy", "click", "rich"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary", ":all:",
           "--python-version", version, "--implementation", "cp", *[x for p in plats for x in ("--platform", p)],
           "-d", str(dest), *reqs]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RemoteError(f"pip download for the device failed: {_last_line(res.stderr)}",
                          "this machine needs the package index (or copy wheels for the device by hand)")


def _tar(files: dict[str, Path], extra: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, path in files.items():
            tar.add(str(path), arcname=name)
        for name, data in extra.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _answer(dev: Device, out: str) -> dict:
    """The job's last stdout line: {"ok": true, "result": ...} or an error, re-raised here with the device's name."""
    try:
        answer = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RemoteError(f"{dev.name}: the job printed no result ({out.strip()[-200:]!r})",
                          "rerun with --keep and run it there by hand") from None
    if not answer.get("ok"):
        if os.environ.get("EDGEKD_DEBUG", "") not in ("", "0"):
            print(f"{dev.name}: {answer.get('traceback')}", file=sys.stderr)
        cls = UsageError if answer.get("exit_code") == 2 else RemoteError
        raise cls(f"{dev.name}: {answer.get('error')}", answer.get("hint"))
    return answer


def calibrate_on(url: str, output: str | os.PathLike, keep: bool = False, **options) -> dict:
    """`profiles calibrate` on the device: the calibrated profile is written to `output` here (its
    `calibration.host` is the device's name, so a bench there later knows it was measured on it)."""
    from ..files import write_text

    files: dict[str, Path] = {}
    if options.get("base") and Path(options["base"]).is_file():
        files[f"profile/{Path(options['base']).name}"] = Path(options["base"])
        options["base"] = f"profile/{Path(options['base']).name}"
    got = run_on(url, "calibrate", Staged(files, "calibrated.toml", options), keep)
    res = got["result"]
    write_text(output, res.pop("toml"))
    return {**res, "path": str(output), "device": got["device"], "overhead": got["overhead"], "kept": got["kept"]}
