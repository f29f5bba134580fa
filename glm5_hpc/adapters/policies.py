"""Every retry and polling policy in one place (tenacity), each with an explicit stop.

- Slurm queries (sacct, squeue): retried on transient failures (timeouts, slurmctld down) with
  exponential backoff 1, 2, 4, 8 s, for at most $GLM5_HPC_SLURM_RETRY_S seconds (default 60).
  sbatch is never retried.
- The requeue before a time limit: retried with backoff 1, 2, 4 s until shortly before the limit.
- Readiness: poll a check every `poll_interval_s` until it returns a value, the deadline passes,
  or the stop event is set. Sleeping on the event makes a stop immediate.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

SLURM_QUERY_STOP_S = float(os.environ.get("GLM5_HPC_SLURM_RETRY_S", "60"))


def slurm_query_retry(transient: type[Exception]) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """The first attempt runs bare; tenacity is imported only once one has failed (importing it
    on every `status` would cost more than a sacct call)."""

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> T:
            try:
                return fn(*args, **kwargs)
            except transient:
                pass
            from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

            again = retry(
                retry=retry_if_exception_type(transient), stop=stop_after_delay(SLURM_QUERY_STOP_S),
                wait=wait_exponential(multiplier=1, min=1, max=8), reraise=True,
            )(fn)  # fmt: skip
            return again(*args, **kwargs)

        return call

    return decorate


def retry_until(
    action: Callable[[], None], deadline_s: float, transient: type[Exception], stop: threading.Event
) -> Exception | None:
    """Run `action` until it succeeds, backing off 1, 2, 4, 4 ... s, for at most deadline_s or until
    `stop` is set; returns the last failure (None once it succeeded)."""
    from tenacity import Retrying, retry_if_exception_type, stop_after_delay, stop_any, stop_when_event_set, wait_exponential

    def sleep(seconds: float) -> None:
        stop.wait(seconds)

    policy = Retrying(
        stop=stop_any(stop_after_delay(max(deadline_s, 0)), stop_when_event_set(stop)), sleep=sleep,
        wait=wait_exponential(multiplier=1, min=1, max=4), retry=retry_if_exception_type(transient), reraise=True,
    )  # fmt: skip
    try:
        for attempt in policy:
            with attempt:
                action()
    except transient as exc:
        return exc
    return None


def poll_until(check: Callable[[], T | None], deadline_s: float, poll_interval_s: float, stop: threading.Event) -> T | None:
    """Call `check` every poll_interval_s until it returns non-None; None on deadline or stop."""
    from tenacity import Retrying, retry_if_result, stop_after_delay, stop_any, stop_when_event_set, wait_fixed

    def sleep(seconds: float) -> None:
        stop.wait(seconds)

    policy: Retrying = Retrying(
        stop=stop_any(stop_after_delay(max(deadline_s, 0)), stop_when_event_set(stop)),
        wait=wait_fixed(poll_interval_s),
        retry=retry_if_result(lambda value: value is None),
        sleep=sleep,
        retry_error_callback=lambda _state: None,
    )
    result: Any = policy(check)
    return result  # type: ignore[no-any-return]
