"""The retry policy the serve job uses for its requeue before the time limit (adapters/policies.py)."""

from __future__ import annotations

import threading
import time

from glm5_hpc.adapters.policies import retry_until
from glm5_hpc.errors import SlurmError


def test_retry_until_succeeds_once_the_action_does() -> None:
    calls: list[float] = []

    def flaky() -> None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise SlurmError("Unexpected message received for job 7")

    assert retry_until(flaky, 30, SlurmError, threading.Event()) is None
    assert len(calls) == 3 and calls[2] - calls[0] >= 2.9  # backed off 1 s, then 2 s


def test_retry_until_gives_up_at_its_deadline_or_stop_with_the_last_failure() -> None:
    def down() -> None:
        raise SlurmError("slurm_load_jobs error: Unable to contact slurm controller")

    started = time.monotonic()
    failure = retry_until(down, 2.5, SlurmError, threading.Event())
    assert isinstance(failure, SlurmError) and "Unable to contact" in str(failure) and time.monotonic() - started < 20
    stop = threading.Event()
    stop.set()
    assert isinstance(retry_until(down, 60, SlurmError, stop), SlurmError)  # the job is ending: no more attempts
