"""Loaded first by every chat server the checks start (workshop/harness.py puts this folder on
PYTHONPATH): what lets a check say where a hung server waits, and make a race happen on purpose.

- WORKSHOP_STACKS_FILE: on SIGUSR1, Python's faulthandler writes every thread's stack there
  (workshop/diagnoses.py reads it). POSIX only: Windows has no SIGUSR1.
- WORKSHOP_SWITCH_INTERVAL: seconds between the interpreter's thread switches (5 ms by default).
  A tiny interval makes threads interleave inside short loops, where a race hides.
"""

import os
import sys

if os.environ.get("WORKSHOP_STACKS_FILE"):
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):
        _stacks = open(os.environ["WORKSHOP_STACKS_FILE"], "a")  # noqa: SIM115 (kept open)
        faulthandler.register(signal.SIGUSR1, file=_stacks, all_threads=True)

if os.environ.get("WORKSHOP_SWITCH_INTERVAL"):
    sys.setswitchinterval(float(os.environ["WORKSHOP_SWITCH_INTERVAL"]))
