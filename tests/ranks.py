"""The processes of a video across devices (`python -m i2v.parallel`) that this test process started."""

from __future__ import annotations

import psutil  # accelerate's and peft's


def ranks_running() -> list[int]:
    """This process's children that are ranks (`python -m i2v.parallel`); other tests' servers are not."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "i2v.parallel" in child.cmdline():
                found.append(child.pid)
        except psutil.Error:  # ended while looked at
            pass
    return found


def gone(pids: list[int]) -> bool:
    """No process of `pids` is left (a zombie would be one not waited for)."""
    return not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
