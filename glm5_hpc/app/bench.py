"""`glm5_hpc bench`: a serving benchmark of a deployment (or of any OpenAI-compatible URL) by
NVIDIA's AIPerf, at one or more concurrencies. It runs from here when the endpoint is reachable
from here (the router's stable endpoint first), else in a step of the serve job on its node
(`srun --jobid --overlap`), writing AIPerf's exports to the run's directory on shared storage.
The figures go into the deployment's record, a table, and a PNG."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from glm5_hpc.adapters.files import read_json, write_json_atomic
from glm5_hpc.adapters.node_relay import needs_relay
from glm5_hpc.adapters.resources import load_profile
from glm5_hpc.adapters.store import Store
from glm5_hpc.app.status import status
from glm5_hpc.domain import bench as plans
from glm5_hpc.domain.bench import BenchPlan, BenchResult, BenchRow
from glm5_hpc.domain.reach import Reach, reach_of, serve_reach_of
from glm5_hpc.domain.record import current_run, profile_of
from glm5_hpc.errors import InputError, StateError

EXPORT = "profile_export_aiperf.json"  # one concurrency's figures
RECORDS = "profile_export.jsonl"  # its requests, one per line
LOG = "aiperf.log"


def bench(name: str | None, plan: BenchPlan, url: str | None = None, model: str | None = None, tokenizer: str | None = None,
          aiperf: str | None = None, plot: str | None = None, out_dir: str | None = None, store: Store | None = None,
          report: Callable[[str], None] = lambda _line: None) -> BenchResult:  # fmt: skip
    """Run the benchmark; return its result (saved in the deployment's record when NAME is given)."""
    if problem := plans.check_plan(plan):
        raise InputError(problem)
    reach: Reach | None = None
    if name is not None:
        store = store or Store()
        (st,) = status([name], store)
        dep = st.to_json()
        stable, served = reach_of(dep), serve_reach_of(dep)
        reach = stable if stable is not None and not needs_relay(stable) else served
        if url is None and reach is None:
            raise InputError(f"deployment {name!r} has no endpoint now (serve job {st.phase}); see glm5_hpc status {name}")
        if not st.healthy:
            raise StateError(f"deployment {name!r} is not healthy ({st.phase}); bench measures a healthy server")
        rec = store.require(name)
        profile = load_profile(profile_of(rec))
        if profile.gateway.enabled:
            raise InputError(
                f"deployment {name!r} is behind an API-key gateway (gateway.enabled); bench it with --url on the server"
            )
        model = model or profile.model_path.name
        tokenizer = tokenizer or str(profile.model_path)  # the checkpoint's own tokenizer, on shared storage
        aiperf = aiperf or profile.bench.aiperf
        run = current_run(rec)
        assert run is not None
        out_dir = out_dir or str(Path(run.get("run_dir") or st.run_dir) / "bench")
    if url is None and reach is None:
        raise InputError("give a deployment NAME or --url URL")
    if model is None:
        raise InputError("--url needs --model (the model id the server lists in /v1/models)")
    target = (url or (reach.url if reach else "")).rstrip("/")
    on_node = reach if url is None and reach is not None and needs_relay(reach) else None
    base = Path(out_dir or "glm5_hpc-bench").resolve()
    bench_id = plans.new_id([p.name for p in base.iterdir()] if base.is_dir() else [])
    artifacts = base / bench_id
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = plans.aiperf_argv(aiperf or "aiperf", plan, target, model, tokenizer or model, str(artifacts))
    where = f"node {on_node.node} (a step of serve job {on_node.job_id})" if on_node else "here"
    report(f"bench {bench_id}: AIPerf against {target} from {where}, concurrency {','.join(map(str, plan.concurrencies))}")
    _run_aiperf(argv, on_node, artifacts)
    rows = [_row(artifacts, plan, c) for c in plan.concurrencies]
    result: BenchResult = {
        "id": bench_id, "at": time.time(), "url": target, "where": on_node.node if on_node else "here",
        "plan": plan._asdict(), "rows": rows, "verdict": plans.verdict(rows), "artifacts": str(artifacts),
    }  # fmt: skip
    from glm5_hpc.adapters.bench_plot import draw

    result["plot"] = draw(result, Path(plot) if plot else artifacts / "bench.png")
    write_json_atomic(artifacts / "result.json", result)
    if name is not None and store is not None:
        _keep(store, name, result)
    return result


def _row(artifacts: Path, plan: BenchPlan, concurrency: int) -> BenchRow:
    folder = Path(plans.export_dir(str(artifacts), plan, concurrency))
    if doc := read_json(folder / EXPORT):
        return plans.row_of(concurrency, doc)
    if (folder / RECORDS).is_file():  # every request failed: AIPerf kept the requests, not the figures
        lines = (folder / RECORDS).read_text(errors="replace").splitlines()
        return plans.row_of_records(concurrency, [json.loads(line) for line in lines if line.strip()])
    tail = "\n".join((artifacts / LOG).read_text(errors="replace").splitlines()[-15:])
    raise StateError(f"AIPerf wrote no results for concurrency {concurrency} (see {artifacts / LOG}):\n{tail}")


def _run_aiperf(argv: list[str], on_node: Reach | None, artifacts: Path) -> None:
    if on_node is not None:
        argv = ["srun", f"--jobid={on_node.job_id}", "--overlap", "--nodes=1", "--ntasks=1", f"--nodelist={on_node.node}",
                "--quiet", *argv]  # fmt: skip
    try:
        with open(artifacts / LOG, "wb") as log:
            rc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False).returncode
    except FileNotFoundError:
        raise InputError(
            f"{argv[0]!r} not found: install AIPerf (python -m venv DIR && DIR/bin/pip install aiperf) and set the "
            "profile's bench.aiperf to DIR/bin/aiperf (or pass --aiperf)"
        ) from None
    if rc != 0 and not any(artifacts.rglob(RECORDS)):
        tail = "\n".join((artifacts / LOG).read_text(errors="replace").splitlines()[-15:])
        raise StateError(f"AIPerf failed (exit {rc}; log {artifacts / LOG}):\n{tail}")


def _keep(store: Store, name: str, result: BenchResult) -> None:
    with store.locked(name):
        rec = store.require(name)
        run = current_run(rec)
        if run is not None:
            run.setdefault("benchmarks", []).append(result)
            store.save(rec)


def find(store: Store, name: str, ref: str) -> BenchResult:
    """A recorded benchmark of NAME by its id, or a result.json / `bench --json` file."""
    if os.sep in ref or ref.endswith(".json"):
        doc = read_json(ref)
        if not doc.get("rows"):
            raise InputError(f"{ref}: not a glm5_hpc bench result (no rows)")
        return doc  # type: ignore[return-value]
    for run in store.require(name)["runs"]:
        for b in run.get("benchmarks", []):
            if b["id"] == ref:
                return b
    known = [b["id"] for run in store.require(name)["runs"] for b in run.get("benchmarks", [])]
    raise InputError(f"deployment {name!r} has no benchmark {ref!r} (recorded: {', '.join(known) or 'none'})")
