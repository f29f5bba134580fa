"""Deployment records: a state directory written by an earlier glm5_hpc still loads (migrated on
read, saved in the current schema), and a record of a newer schema is refused, naming its file.

The fixtures in fixtures/records/schema1/ are records written by glm5_hpc with schema 1 on the
local cluster: a chain redeployed once (api), a routed deployment with a failed replacement
(bgstop), one whose serve jobs handed over twice (handover), and one with a job found by its
comment (unrec). Their paths were rewritten under /shared/; nothing else was changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from glm5_hpc.adapters.store import Store
from glm5_hpc.domain.record import SCHEMA, all_runs, current_run, job_ids, migrate
from glm5_hpc.domain.slurm_state import JobInfo
from glm5_hpc.domain.status import RunFiles, status_of
from glm5_hpc.errors import StateError
from tests.conftest import FIXTURES

SCHEMA1 = sorted((FIXTURES / "records" / "schema1").glob("*.json"))


def v1_job_ids(doc: dict) -> set[str]:
    """Every job id a schema-1 record holds, collected by hand from its JSON."""
    runs = [*doc["runs"], *doc.get("failed_replacements", [])]
    ids = {s["job_id"] for run in runs for s in run["stages"] if s.get("job_id")}
    ids |= {h["job_id"] for run in runs for h in run.get("handovers", [])}
    return ids | {a["job_id"] for run in runs for a in run.get("adopted", [])}


def test_fixtures_cover_the_record_shapes() -> None:
    docs = [json.loads(p.read_text()) for p in SCHEMA1]
    assert {d["schema"] for d in docs} == {1}
    assert any("router" in d for d in docs) and any(d.get("failed_replacements") for d in docs)
    assert any(run.get("handovers") for d in docs for run in d["runs"])


@pytest.mark.parametrize("path", SCHEMA1, ids=lambda p: p.stem)
def test_a_schema1_record_loads_and_is_saved_in_the_current_schema(path: Path, tmp_path: Path) -> None:
    before = json.loads(path.read_text())
    (tmp_path / "deployments").mkdir(mode=0o700)
    shutil.copy(path, tmp_path / "deployments" / path.name)
    store = Store(tmp_path)
    rec = store.require(path.stem)
    assert rec["schema"] == SCHEMA and rec["name"] == before["name"] == path.stem
    assert {j for run in all_runs(rec) for j in job_ids(run)} == v1_job_ids(before)  # no job id lost
    run = current_run(rec)
    assert run is not None and run["run_id"] == before["runs"][-1]["run_id"]
    infos = {j: JobInfo(j, "COMPLETED") for run in all_runs(rec) for j in job_ids(run)}
    st = status_of(rec, infos, RunFiles())
    assert st.name == path.stem and st.run_id == run["run_id"] and st.phase == "ended"
    with store.locked(path.stem):
        store.save(rec)
    saved = json.loads((tmp_path / "deployments" / path.name).read_text())
    assert saved["schema"] == SCHEMA and store.require(path.stem) == saved
    assert migrate(json.loads(json.dumps(saved)), path.stem) == saved  # migrating the current schema changes nothing


def test_a_record_of_a_newer_schema_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "deployments").mkdir(mode=0o700)
    newer = tmp_path / "deployments" / "later.json"
    newer.write_text(json.dumps({"schema": SCHEMA + 1, "name": "later", "runs": []}))
    with pytest.raises(StateError, match=f"{newer}: it has schema {SCHEMA + 1}, written by a newer glm5_hpc"):
        Store(tmp_path).require("later")
