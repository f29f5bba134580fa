"""Command line: argument parsing, output formatting and exit codes. No logic lives here.

Exit codes: 0 success; 1 the operation failed (a stage failed, the server is unhealthy ...);
2 bad input (profile, arguments, checkpoint) with nothing changed or submitted; 130 interrupted.
Heavy modules are imported inside the command that needs them, so `--help` starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glm5_hpc import __version__
from glm5_hpc.errors import Glm5Error

if TYPE_CHECKING:
    from glm5_hpc.app.status import DeploymentStatus

EDITS = ("architecture", "rope", "tokenizer-class", "special-tokens-key")
STAGES = ("prep-model", "build-wheel", "serve")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glm5_hpc", description="Serve GLM-5 NVFP4 with TensorRT-LLM on a Slurm cluster.")
    p.add_argument("--version", action="version", version=f"glm5_hpc {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("submit", help="submit prep-model -> build-wheel -> serve for a new deployment")
    s.add_argument("--profile", required=True, help="profile name (cluster_profiles/NAME.yaml) or path")
    s.add_argument("--name", help="deployment name (default: the profile's name)")
    s.add_argument("--rebuild", action="store_true", help="build the wheel even if the cache holds it")
    _wait_args(s)

    s = sub.add_parser("redeploy", help="replace a deployment's jobs, resubmitting only what is needed")
    s.add_argument("name", metavar="NAME")
    s.add_argument("--profile", help="profile to use (default: the one the deployment was submitted with)")
    s.add_argument("--from", dest="from_stage", choices=STAGES, help="rerun this stage and every later one")
    _wait_args(s)

    s = sub.add_parser("status", help="every stage's job, state and node, the endpoint and its health")
    s.add_argument("names", nargs="*", metavar="NAME", help="deployments (default: all)")
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.add_argument("--watch", action="store_true", help="refresh in place until Ctrl-C")
    s.add_argument("--interval", type=float, default=5.0, metavar="S", help="with --watch: seconds between refreshes")

    s = sub.add_parser("list", help="one line per deployment")
    s.add_argument("--json", action="store_true", help="one JSON document")

    s = sub.add_parser("logs", help="a stage's log (default: the latest stage with a job)")
    s.add_argument("name", metavar="NAME")
    s.add_argument("stage", nargs="?", choices=STAGES)
    s.add_argument("-n", "--lines", type=int, default=50, help="last N lines (default 50)")
    s.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")

    s = sub.add_parser("probe", help="run the probe ladder once; exit 0 only when every rung passes")
    s.add_argument("name", nargs="?", metavar="NAME", help="a deployment (its endpoint and health settings)")
    s.add_argument("--url", help="probe this URL instead of (or besides) a deployment's endpoint")
    s.add_argument("--model", help="model id expected in /v1/models (default: the deployment's, or the first listed)")

    s = sub.add_parser("cancel", help="cancel every job of a deployment (its containers are removed)")
    s.add_argument("name", metavar="NAME")

    s = sub.add_parser("prep", help="edit a checkpoint's config files as the recipe says (Steps 1-2)")
    s.add_argument("model_dir", type=Path, metavar="MODEL_DIR")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="say what would change; exit 1 if not prepared")
    g.add_argument("--revert", action="store_true", help="restore the .orig originals")
    s.add_argument("--skip", action="append", choices=EDITS, default=[], help="leave this edit out (repeatable)")
    s.add_argument("--record", type=Path, help="write the result (actions, sha256 before/after) to this JSON file")

    s = sub.add_parser("patch-source", help="apply the recipe's C++ fixes to a TensorRT-LLM tree (Step 4)")
    s.add_argument("src", type=Path, metavar="SRC")
    s.add_argument("--check", action="store_true", help="report each patch's state; exit 1 if any is needed")

    s = sub.add_parser("render", help="print the scripts a submission would write, without submitting")
    s.add_argument("--profile", required=True)
    s.add_argument("--name", help="deployment name (default: the profile's name)")
    s.add_argument("stage", nargs="?", choices=STAGES, help="only this stage's files")

    s = sub.add_parser("preflight", help="check this node's GPUs before a build or serve stage starts")
    s.add_argument("--min-gpus", type=int, default=0, help="GPUs needed (serve.tp_size)")
    s.add_argument("--cuda-arch", help="recipe.build.cuda_architectures the wheel is built for")
    s.add_argument("--model", type=Path, help="checkpoint directory (an NVFP4 checkpoint needs compute capability >= 10.0)")
    s.add_argument("--nvidia-smi", default="nvidia-smi", help=argparse.SUPPRESS)
    return p


def _wait_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--wait", action="store_true", help="block until healthy (exit 0) or failed (exit 1)")
    s.add_argument("--timeout", type=float, default=None, metavar="S", help="with --wait: give up after S seconds")


def _submitted(name: str, run: dict[str, Any], args: argparse.Namespace) -> int:
    from glm5_hpc.app.waiting import wait

    jobs = ", ".join(f"{s['stage']}={s['job_id'] or 'skipped'}" for s in run["stages"])
    print(f"submitted deployment {name} run {run['run_id']}: {jobs}", flush=True)
    if not args.wait:
        return 0
    st = wait(name, args.timeout, lambda line: print(f"  {line}", flush=True))
    print(f"healthy: {st.endpoint} ({st.endpoint_kind})")
    print(f"completion: {st.completion}")
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from glm5_hpc.adapters.resources import load_profile
    from glm5_hpc.app.submit import submit

    profile = load_profile(args.profile)
    name = args.name or profile.name
    return _submitted(name, submit(profile, name, rebuild=args.rebuild), args)


def _cmd_redeploy(args: argparse.Namespace) -> int:
    from glm5_hpc.app.submit import redeploy

    return _submitted(args.name, redeploy(args.name, args.profile, args.from_stage), args)


def _cmd_status(args: argparse.Namespace) -> int:
    from glm5_hpc.app.status import status

    while True:
        statuses = status(args.names or None)
        if args.json:
            text = json.dumps({"deployments": [s.to_json() for s in statuses]}, indent=2)
        else:
            text = "\n".join(format_status(st) for st in statuses) or "no deployments"
        if args.watch and sys.stdout.isatty():
            sys.stdout.write("\033[H\033[J")  # redraw in place
        print(text + (f"\n-- {time.strftime('%H:%M:%S')}, every {args.interval:g}s, Ctrl-C to stop --" if args.watch else ""),
              flush=True)  # fmt: skip
        if not args.watch:
            return 0
        time.sleep(args.interval)


def format_status(st: DeploymentStatus) -> str:
    rows = [("STAGE", "JOB", "STATE", "NODE", "ELAPSED", "EXIT", "REASON")]
    rows += [
        (s.stage, s.job_id or "-", s.state, s.node or "-", s.elapsed or "-", s.exit_code or "-", s.reason) for s in st.stages
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"deployment {st.name} (profile {st.profile}, run {st.run_id}, {st.runs} run(s))"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"  endpoint: {st.endpoint or '-'}" + (f" ({st.endpoint_kind})" if st.endpoint_kind else ""))
    detail = st.completion if st.healthy else st.health_reason
    lines.append(f"  health:   {'healthy' if st.healthy else st.phase}" + (f": {detail}" if detail else ""))
    if st.last_probe:
        p = st.last_probe
        at = time.strftime("%H:%M:%S", time.localtime(p.get("at") or 0))
        lines.append(f"  probe:    {'ok' if p.get('ok') else 'FAILED'} at {at}: {p.get('detail')}; restarts: {st.restarts}")
    if "prep" in st.recipe:
        files = st.recipe["prep"].get("files", [])
        described = [
            f"{f['file']} {'changed' if f.get('written') else 'unchanged'} (sha256 {f['sha256_after'][:12]})" for f in files
        ]
        lines.append("  prep:     " + "; ".join(described))
    if "flashinfer" in st.recipe:
        fi = st.recipe["flashinfer"]
        lines.append(f"  flashinfer: {fi.get('state')}" + (" -> patched" if fi.get("changed") else ""))
    if st.failure:
        lines.append("  failure:  " + st.failure.replace("\n", "\n            "))
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    from glm5_hpc.app.status import status

    statuses = status()
    if args.json:
        keys = ("name", "profile", "run_id", "runs", "phase", "healthy", "endpoint")
        print(json.dumps({"deployments": [{k: st.to_json()[k] for k in keys} for st in statuses]}, indent=2))
        return 0
    rows = [("NAME", "PROFILE", "RUN", "STAGES", "HEALTH", "ENDPOINT")]
    for st in statuses:
        states = " ".join(f"{s.stage}:{s.state}" for s in st.stages)
        rows.append((st.name, st.profile, st.run_id, states, "healthy" if st.healthy else st.phase, st.endpoint or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    from glm5_hpc.app.logs import logs

    logs(args.name, args.stage, args.lines, args.follow, lambda text: print(text, flush=True))
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from glm5_hpc.app.probe import RUNGS, probe

    url, verdicts = probe(args.name, args.url, args.model)
    print(f"probing {url}")
    for v in verdicts:
        print(f"  {v.rung:<10} {'ok' if v.ok else 'FAILED':<6} {v.detail}")
    for rung in RUNGS[len(verdicts) :]:
        print(f"  {rung:<10} {'-':<6} not reached")
    return 0 if len(verdicts) == len(RUNGS) and all(v.ok for v in verdicts) else 1


def _cmd_cancel(args: argparse.Namespace) -> int:
    from glm5_hpc.app.cancel import cancel

    cancelled = cancel(args.name)
    print(f"cancelled jobs {', '.join(cancelled)}" if cancelled else f"nothing left to cancel in {args.name}")
    return 0


def _cmd_prep(args: argparse.Namespace) -> int:
    from glm5_hpc.adapters.files import write_json_atomic
    from glm5_hpc.app.prep import prep_model
    from glm5_hpc.domain.model_prep import Edits

    edits = Edits(**{e.replace("-", "_"): e not in args.skip for e in EDITS})
    mode = "check" if args.check else "revert" if args.revert else "apply"
    result = prep_model(args.model_dir, edits, mode)
    for f in result.files:
        verb = ("would change" if mode == "check" else "changed") if f.actions else "unchanged"
        print(f"{f.file}: {verb}" + (f": {'; '.join(f.actions)}" if f.actions else ""))
    if args.record:
        write_json_atomic(args.record, result.to_json())
    return 1 if mode == "check" and result.changes_needed else 0


def _cmd_patch_source(args: argparse.Namespace) -> int:
    from glm5_hpc.app.source import patch_source

    outcomes = patch_source(args.src, check=args.check)
    for o in outcomes:
        print(o.line())
    return 1 if args.check and any(o.state == "needed" for o in outcomes) else 0


def _cmd_render(args: argparse.Namespace) -> int:
    from glm5_hpc.app.render import render_preview

    for fname, text in render_preview(args.profile, args.name, args.stage).items():
        print(f"==> {fname} <==\n{text}")
    return 0


def _cmd_preflight(args: argparse.Namespace) -> int:
    from glm5_hpc.app.preflight import preflight

    found = preflight(args.min_gpus, args.cuda_arch, args.model, args.nvidia_smi)
    for problem in found:
        print(f"glm5_hpc: GPU preflight failed: {problem}", file=sys.stderr)
    if not found:
        print("GPU preflight passed")
    return 1 if found else 0


COMMANDS = {
    "submit": _cmd_submit,
    "redeploy": _cmd_redeploy,
    "status": _cmd_status,
    "list": _cmd_list,
    "logs": _cmd_logs,
    "probe": _cmd_probe,
    "cancel": _cmd_cancel,
    "prep": _cmd_prep,
    "patch-source": _cmd_patch_source,
    "render": _cmd_render,
    "preflight": _cmd_preflight,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except Glm5Error as exc:
        if args.debug:
            raise
        print(f"glm5_hpc: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if args.command == "status":
            return 0
        print("glm5_hpc: interrupted; submitted jobs keep running (see glm5_hpc status)", file=sys.stderr)
        return 130
