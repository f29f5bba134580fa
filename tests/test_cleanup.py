"""`glm5_hpc cleanup`: the pure plan, and the command on a real deployment of two runs."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from glm5_hpc.domain.cleanup import parse_age, plan_cleanup
from tests.conftest import glm5, status_json


def run(run_id: str, job: str, at: float, key: str = "k1") -> dict[str, object]:
    return {"run_id": run_id, "run_dir": f"/w/deployments/d/runs/{run_id}", "submitted_at": at, "wheel_key": key,
            "stages": [{"stage": "serve", "job_id": job}]}  # fmt: skip


def test_plan_keeps_current_and_live_runs_and_used_wheels() -> None:
    rec = {"name": "d", "runs": [run("r1", "1", 10), run("r2", "2", 20, "k0"), run("r3", "3", 30)]}
    wheels = {"/w/wheels/k0": 5.0, "/w/wheels/k1": 5.0, "/w/wheels/old": 5.0, "/w/wheels/new": 500.0}
    plan = plan_cleanup([rec], live_jobs={"2"}, wheels=wheels, cutoff=100)
    assert [(r.path, r.run_id) for r in plan] == [
        ("/w/deployments/d/runs/r1", "r1"),  # ended, not current
        ("/w/wheels/old", ""),  # used by no run, older than the cutoff
    ]  # r2 has a live job (and keeps wheel k0), r3 is current (wheel k1), /w/wheels/new is too recent
    assert plan_cleanup([rec], set(), wheels, cutoff=15)[0].run_id == "r1" and len(plan_cleanup([rec], set(), {}, 5)) == 0
    assert (parse_age("7d"), parse_age("12h"), parse_age("0")) == (604800, 43200, 0)
    with pytest.raises(ValueError, match="--older-than '7 days'"):
        parse_age("7 days")


@pytest.mark.usefixtures("cluster")
def test_cleanup_removes_ended_runs_and_unused_wheels_only(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path
) -> None:
    profile = make_profile("tidy", serve={"port": "auto"})
    cleanup_deployments.append("tidy")
    glm5("submit", "--profile", str(profile), "--name", "tidy", "--wait", "--timeout", "240", check=True)
    first = status_json("tidy")
    glm5("redeploy", "tidy", "--wait", "--timeout", "240", check=True)
    record = json.loads((state_dir / "deployments" / "tidy.json").read_text())
    old_dir, current_dir = Path(record["runs"][0]["run_dir"]), Path(record["runs"][1]["run_dir"])
    stale = profile.parent / "work" / "wheels" / "0123456789abcdef0123"
    stale.mkdir(parents=True)
    (stale / "tensorrt_llm-0-py3-none-any.whl").write_bytes(b"x" * 2_000_000)
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    dry = glm5("cleanup", "--older-than", "0", "--dry-run", check=True).stdout
    assert f"would remove {old_dir} (tidy run {first['run_id']}): an earlier run, ended" in dry
    assert f"would remove {stale}: a wheel no current or live run uses, 2.0 MB" in dry
    assert str(current_dir) not in dry and "would remove 2 item(s)" in dry
    assert old_dir.exists() and stale.exists()  # a dry run removes nothing
    assert "nothing to remove" in glm5("cleanup", check=True).stdout  # the default keeps what is under 7 days old
    glm5("cleanup", "--older-than", "0", check=True)
    assert not old_dir.exists() and not stale.exists() and current_dir.exists()
    assert status_json("tidy")["healthy"]  # the serving run, its wheel and its files are untouched
    assert json.loads((state_dir / "deployments" / "tidy.json").read_text())["runs"][0]["cleaned_at"] > 0
    assert glm5("cleanup", "--older-than", "0", check=True).stdout.strip() == "nothing to remove"
    assert glm5("cleanup", "--older-than", "soon").returncode == 2
