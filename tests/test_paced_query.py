"""Slurm pacing for loops: asked once per change, backing off while nothing changes, at once on a
new hint. Slurm's answers and the clock are replaced here; the cluster tests count real calls."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from glm5_hpc.app import paced_query
from glm5_hpc.app.paced_query import PacedQuery
from glm5_hpc.domain.slurm_state import JobInfo


class FakeSlurm:
    def __init__(self) -> None:
        self.calls = 0
        self.state = "RUNNING"

    def query(self, ids: Sequence[str]) -> dict[str, JobInfo]:
        self.calls += 1
        return {i: JobInfo(i, self.state) for i in ids}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeSlurm, list[float]]:
    slurm, clock = FakeSlurm(), [0.0]
    monkeypatch.setattr(paced_query.slurm, "query", slurm.query)
    monkeypatch.setattr(paced_query.time, "monotonic", lambda: clock[0])
    return slurm, clock


def ask_every(query: PacedQuery, clock: list[float], step: float, until: float, hint: object = None) -> None:
    while clock[0] < until:
        query(["1", "2"], hint)
        clock[0] += step


def test_backs_off_while_nothing_changes(fake: tuple[FakeSlurm, list[float]]) -> None:
    slurm, clock = fake
    ask_every(PacedQuery(1, 8), clock, step=0.25, until=60)
    # asked at 0 (first), 1, 3, 7, 15, 23, 31, 39, 47, 55: intervals 1, 2, 4, 8, then capped at 8
    assert slurm.calls == 10


def test_a_change_resets_the_interval(fake: tuple[FakeSlurm, list[float]]) -> None:
    slurm, clock = fake
    q = PacedQuery(1, 8)
    ask_every(q, clock, step=0.25, until=16)  # 0, 1, 3, 7, 15: interval now 8
    assert slurm.calls == 5
    slurm.state = "COMPLETED"
    ask_every(q, clock, step=0.25, until=24)  # 23 sees the change ...
    ask_every(q, clock, step=0.25, until=24.5)  # ... so the next is 1 s later, at 24
    assert slurm.calls == 7


def test_a_new_hint_or_job_list_asks_at_once(fake: tuple[FakeSlurm, list[float]]) -> None:
    slurm, _ = fake
    q = PacedQuery(1, 8)
    q(["1"], "loading")
    q(["1"], "loading")
    assert slurm.calls == 1
    q(["1"], "ready")
    assert slurm.calls == 2
    q(["1", "2"], "ready")
    assert slurm.calls == 3 and set(q(["1", "2"], "ready")) == {"1", "2"}
