"""Run `python -m MODULE ARGS...` and write its own peak memory (VmHWM, MB) to the file PEAK_FILE names.

The peak from wait4 or getrusage would include the parent's pages before exec; VmHWM starts afresh at exec.

    PEAK_FILE=/tmp/peak python benchmarks/_peak.py dialpref.cli data convert in.jsonl out.jsonl
"""

import atexit
import os
import runpy
import sys


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _write() -> None:
    with open(os.environ["PEAK_FILE"], "w") as handle:
        handle.write(f"{vm_hwm_mb():.1f}")


if __name__ == "__main__":
    atexit.register(_write)
    module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
