"""The device's side of `--on` (beside cli/: the other entry point, and like it above the api layer it calls):
`python3 -m edgekd.device_job job.json` in the temp dir edgekd copied.

Runs the step through the Python API (no click or rich needed there: onnxruntime, onnx and numpy are enough)
and prints one JSON line: {"ok": true, "result": ...}, or {"ok": false, "error": ..., "hint": ..., "exit_code": N}
for the workstation to show as its own one-line error.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def _bench(target: str, options: dict) -> dict:
    from edgekd.api.bench import bench

    return bench(target, **options).report


def _calibrate(target: str, options: dict) -> dict:
    from edgekd.latency.calibrate import calibrate

    res = calibrate(target, **options)
    res.pop("alongside_seconds", None)
    return {**res, "toml": Path(target).read_text(encoding="utf-8")}


STEPS = {"bench": _bench, "calibrate": _calibrate}


def _heartbeat() -> None:
    """A line on stderr every HEARTBEAT_S seconds while the step works: the workstation tells a slow job from a
    hung one by it (`?silence=S` in --on)."""
    import threading
    import time

    from edgekd.deploy.remote import HEARTBEAT, HEARTBEAT_S

    def beat():
        while True:
            time.sleep(HEARTBEAT_S)
            print(HEARTBEAT, file=sys.stderr, flush=True)

    threading.Thread(target=beat, daemon=True).start()


def main(job_path: str) -> dict:
    from edgekd.errors import EdgekdError, missing_module

    _heartbeat()
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    try:
        return {"ok": True, "result": STEPS[job["step"]](job["target"], job.get("options") or {})}
    except EdgekdError as e:
        return _failed(e.message, e.hint, e.exit_code)
    except ModuleNotFoundError as e:
        err = missing_module(e)
        if err is None:
            return _failed(f"{e.name} is not installed here", f"pip install {e.name}", 1)
        return _failed(err.message, err.hint, err.exit_code)
    except Exception as e:  # one line back to the workstation
        text = (str(e).strip().splitlines() or [""])[0][:300]
        return _failed(f"{type(e).__name__}: {text}", "rerun with --debug for the device's traceback", 1)


def _failed(error: str, hint: str | None, exit_code: int) -> dict:
    """The failure as the workstation shows it; the traceback rides along for --debug."""
    return {"ok": False, "error": error, "hint": hint, "exit_code": exit_code, "traceback": traceback.format_exc()}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1]), default=str))
