"""Parsing real sacct/squeue output (captured from the local cluster: tests/fixtures/)."""

from __future__ import annotations

from glm5_hpc.domain.slurm_state import UNKNOWN, merge, parse_sacct, parse_squeue
from tests.conftest import FIXTURES


def test_sacct_states_exit_codes_and_reasons() -> None:
    jobs = parse_sacct((FIXTURES / "sacct.txt").read_text())
    assert jobs["2"].state == "COMPLETED" and jobs["2"].exit_code == "0:0" and jobs["2"].node == "vm"
    assert jobs["3"].reason == ""  # a finished job's stale pending reason is dropped
    assert jobs["4"].state == "CANCELLED"  # "CANCELLED by 0"
    assert jobs["5"].state == "FAILED" and jobs["5"].exit_code == "3:0" and jobs["5"].failed
    assert jobs["6"].state == "PENDING" and jobs["6"].reason == "DependencyNeverSatisfied" and jobs["6"].node == ""
    assert jobs["7"].state == "RUNNING" and jobs["7"].live and not jobs["7"].terminal
    assert "99999" not in jobs


def test_squeue_overrides_for_live_jobs_and_unknown_when_nobody_knows() -> None:
    sacct = parse_sacct((FIXTURES / "sacct.txt").read_text())
    squeue = parse_squeue((FIXTURES / "squeue.txt").read_text())
    assert squeue["8"].reason == "Dependency" and squeue["7"].node == "vm"
    merged = merge(["2", "7", "8", "99999"], sacct, squeue)
    assert merged["7"].state == "RUNNING" and merged["7"].elapsed == "00:00:04"
    assert merged["99999"].state == UNKNOWN and not merged["99999"].live and not merged["99999"].terminal
    after_cancel = parse_sacct((FIXTURES / "sacct-cancelled.txt").read_text())
    assert after_cancel["8"].state == "CANCELLED" and after_cancel["8"].start == ""
