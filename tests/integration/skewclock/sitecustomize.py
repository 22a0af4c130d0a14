"""Makes a test server process read its wall clock wrong, as a box with a dead CMOS battery does.

Python imports ``sitecustomize`` at start-up from ``sys.path``; the fault-schedule tests start a
``motcua`` process with this directory on ``PYTHONPATH`` and ``MOTCUA_TEST_SKEW_MS`` set, and
every wall-clock read of motcua (``time.time``, ``time.time_ns``: the HLC's wall source, the
session signer, the audit log) is off by that much from its first line on. The monotonic clock
is left alone, as a real wrong wall clock leaves it.

Not libfaketime: under Debian's libfaketime every timed wait of Python (``Event.wait(t)``,
``Lock.acquire(timeout=t)``) never returns, and with its monotonic clock left real
``time.sleep`` fails with EINVAL (both measured), so a box's sync loop would stall for reasons a
real box never has.
"""

import os
import time

_SKEW_MS = int(os.environ.get("MOTCUA_TEST_SKEW_MS", "0") or 0)

if _SKEW_MS:
    _time_ns, _time = time.time_ns, time.time

    def _skewed_ns() -> int:
        return _time_ns() + _SKEW_MS * 1_000_000

    def _skewed() -> float:
        return _time() + _SKEW_MS / 1000

    time.time_ns = _skewed_ns
    time.time = _skewed
