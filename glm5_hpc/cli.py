"""Command line: argument parsing, output formatting and exit codes. No logic lives here.

Exit codes: 0 success; 1 the operation failed (a stage failed, the server is unhealthy ...);
2 bad input (profile, arguments, checkpoint) with nothing changed or submitted; 130 interrupted.
Heavy modules are imported inside the command that needs them, so `--help` starts fast.
"""

from __future__ import annotations

import argparse
import sys

from glm5_hpc import __version__
from glm5_hpc.errors import Glm5Error

TYPE_CHECKING = False  # typing, pathlib and json are not imported at start-up: `--help` stays fast

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from glm5_hpc.api import Deployment, Status

EDITS = ("architecture", "rope", "tokenizer-class", "special-tokens-key")
STAGES = ("prep-model", "build-wheel", "serve")


def _parser(argv: list[str]) -> argparse.ArgumentParser:
    """The full parser for the command argv names; the other commands get their line in --help but
    not their arguments (building them all would cost more than the interpreter's start)."""
    wanted = next((a for a in argv if not a.startswith("-")), None)
    p = argparse.ArgumentParser(prog="glm5_hpc", description="Serve GLM-5 NVFP4 with TensorRT-LLM on a Slurm cluster.")
    p.add_argument("--version", action="version", version=f"glm5_hpc {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser | None:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help)
        return parser if name == wanted else None

    if s := command("submit", "submit prep-model -> build-wheel -> serve for a new deployment"):
        s.add_argument("--profile", required=True, help="profile name (cluster_profiles/NAME.yaml) or path")
        s.add_argument("--name", help="deployment name (default: the profile's name)")
        s.add_argument("--rebuild", action="store_true", help="build the wheel even if the cache holds it")
        s.add_argument("--replicas", type=_replicas, help="copies of the server behind the router (default: serve.replicas)")
        s.add_argument("--json", action="store_true", help="print the submitted run as one JSON document (without --wait)")
        _wait_args(s)

    if s := command("redeploy", "replace a deployment's jobs, resubmitting only what is needed"):
        s.add_argument("name", metavar="NAME")
        s.add_argument("--profile", help="profile to use (default: the one the deployment was submitted with)")
        s.add_argument("--from", dest="from_stage", choices=STAGES, help="rerun this stage and every later one")
        s.add_argument("--no-downtime", action="store_true",
                       help="blue/green behind the router: the old run serves until the new one is healthy; waits")  # fmt: skip
        s.add_argument("--json", action="store_true", help="print the submitted run as one JSON document (without --wait)")
        _wait_args(s)

    if s := command("scale", "change the number of replicas of a live deployment (down: drained, then cancelled)"):
        _route_arg(s)
        s.add_argument("name", metavar="NAME")
        s.add_argument("--replicas", type=_replicas, required=True, metavar="M")
        s.add_argument("--json", action="store_true", help='one JSON document: {"jobs": [ids submitted or cancelled]}')

    if s := command("status", "every stage's job, state and node, the endpoint and its health"):
        _route_arg(s)
        s.add_argument("names", nargs="*", metavar="NAME", help="deployments (default: all)")
        s.add_argument("--json", action="store_true", help="one JSON document")
        s.add_argument("--watch", action="store_true", help="refresh in place until Ctrl-C")
        s.add_argument("--interval", type=_positive, default=5.0, metavar="S", help="with --watch: seconds between refreshes")

    if s := command("list", "one line per deployment"):
        _route_arg(s)
        s.add_argument("--json", action="store_true", help="one JSON document")

    if s := command("logs", "a stage's log (default: the latest stage with a job)"):
        _route_arg(s)
        s.add_argument("name", metavar="NAME")
        s.add_argument("stage", nargs="?", choices=STAGES)
        s.add_argument("-n", "--lines", type=_count, default=50, help="last N lines (default 50)")
        s.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")

    if s := command("probe", "run the probe ladder once; exit 0 only when every rung passes"):
        _route_arg(s)
        s.add_argument("name", nargs="?", metavar="NAME", help="a deployment (its endpoint and health settings)")
        s.add_argument("--url", type=_url, help="probe this URL instead of (or besides) a deployment's endpoint")
        s.add_argument("--model", help="model id expected in /v1/models (default: the deployment's, or the first listed)")
        s.add_argument("--json", action="store_true", help="one JSON document: the URL probed and every rung's verdict")

    if s := command(
        "bench", "a serving benchmark (NVIDIA's AIPerf) of a deployment or URL; exit 1 on a failed request or no tokens"
    ):
        _route_arg(s)
        s.add_argument("name", nargs="?", metavar="NAME", help="a healthy deployment (its router's endpoint, else its server's)")
        s.add_argument("--url", type=_url, help="benchmark this OpenAI-compatible server instead (with --model)")
        s.add_argument("--model", help="model id to request (default: the deployment's)")
        s.add_argument("--concurrency", type=_concurrencies, default=(1, 8, 32), metavar="C[,C...]",
                       help="requests in flight, one run per value (default 1,8,32)")  # fmt: skip
        s.add_argument("--input-len", type=_count, default=1024, metavar="N", help="prompt tokens (default 1024)")
        s.add_argument("--output-len", type=_count, default=1024, metavar="N", help="generated tokens, forced (default 1024)")
        g = s.add_mutually_exclusive_group()
        g.add_argument("--requests", type=_count, metavar="N", help="requests per concurrency (default: AIPerf's, 2 x C)")
        g.add_argument("--duration", type=_positive, metavar="S", help="seconds per concurrency instead of a request count")
        s.add_argument("--tokenizer", help="tokenizer directory (default: the deployment's checkpoint)")
        s.add_argument("--aiperf", help="the aiperf command (default: the profile's bench.aiperf)")
        s.add_argument("--plot", metavar="FILE", help="where to draw the PNG (default: beside AIPerf's exports)")
        s.add_argument("--output", metavar="DIR", help="with --url: where AIPerf's exports go (default ./glm5_hpc-bench)")
        s.add_argument("--compare", nargs=2, metavar=("A", "B"),
                       help="print two recorded runs of NAME (ids, or result.json files) side by side; runs nothing")  # fmt: skip
        s.add_argument("--json", action="store_true", help="one JSON document: the result with its figures per concurrency")

    if s := command("cleanup", "remove ended runs' directories and unused wheels from the work dirs"):
        s.add_argument("--older-than", default="7d", help="only what is older than this (e.g. 7d, 12h, 0; default 7d)")
        s.add_argument("--dry-run", action="store_true", help="list what would be removed and the space it would free")

    if s := command("cancel", "cancel every job of a deployment (its containers are removed)"):
        _route_arg(s)
        s.add_argument("name", metavar="NAME")
        s.add_argument("--json", action="store_true", help='one JSON document: {"cancelled": [job ids]}')

    if s := command("prep", "edit a checkpoint's config files as the recipe says (Steps 1-2)"):
        s.add_argument("model_dir", type=_path, metavar="MODEL_DIR")
        g = s.add_mutually_exclusive_group()
        g.add_argument("--check", action="store_true", help="say what would change; exit 1 if not prepared")
        g.add_argument("--revert", action="store_true", help="restore the .orig originals")
        s.add_argument("--skip", action="append", choices=EDITS, default=[], help="leave this edit out (repeatable)")
        s.add_argument("--record", type=_path, help="write the result (actions, sha256 before/after) to this JSON file")

    if s := command("patch-source", "apply the recipe's C++ fixes to a TensorRT-LLM tree (Step 4)"):
        s.add_argument("src", type=_path, metavar="SRC")
        s.add_argument("--check", action="store_true", help="report each patch's state; exit 1 if any is needed")

    if s := command("patch-flashinfer", "give GLM-5 the flashinfer it needs (Step 7): patch, or say why not"):
        s.add_argument("path", type=_path, metavar="PATH", help="a flashinfer package directory, or a site-packages directory")
        s.add_argument("--check", action="store_true", help="report the state and change nothing")

    if s := command("render", "print the scripts a submission would write, without submitting"):
        s.add_argument("--profile", required=True)
        s.add_argument("--name", help="deployment name (default: the profile's name)")
        s.add_argument("stage", nargs="?", choices=STAGES, help="only this stage's files")

    if s := command("preflight", "check this node's GPUs before a build or serve stage starts"):
        s.add_argument("--min-gpus", type=int, default=0, help="GPUs needed (serve.tp_size)")
        s.add_argument("--cuda-arch", help="recipe.build.cuda_architectures the wheel is built for")
        s.add_argument("--model", type=_path, help="checkpoint directory (an NVFP4 checkpoint needs compute capability >= 10.0)")
        s.add_argument("--nvidia-smi", default="nvidia-smi", help=argparse.SUPPRESS)

    if s := command("remote", "manage glm5_hpc's own copy on a profile's login node"):
        s.add_argument("action", choices=["setup"], help="setup: create or upgrade the remote virtual environment")
        s.add_argument("--profile", required=True)

    if s := command("tunnel", "forward a local port to a deployment's endpoint (follows redeploys)"):
        s.add_argument("name", metavar="NAME")
        s.add_argument("--profile", help="the deployment's profile (through its login node, if it has ssh:)")
        s.add_argument("--local-port", type=_port, default=0, help="local port (default: a free one, printed)")

    if s := command("profile", "profile init (ask the cluster and write one), validate, show"):
        psub = s.add_subparsers(dest="profile_command", required=True, metavar="ACTION")
        pi = psub.add_parser("init", help="ask the cluster (sinfo, container tools) and write a commented profile")
        pi.add_argument("name", metavar="NAME")
        pi.add_argument("--output", type=_path, help="file to write (default: ~/.config/glm5_hpc/profiles/NAME.yaml)")
        pi.add_argument("--force", action="store_true", help="replace an existing file")
        pi.add_argument(
            "--ssh", metavar="[USER@]HOST[:PORT]", help="ask this login node over SSH; the profile gets an ssh: block"
        )
        pi.add_argument("--identity-file", help="with --ssh: private key")
        pi.add_argument("--known-hosts", default="~/.ssh/known_hosts", help="with --ssh: known_hosts file")
        pi.add_argument("--model", default="/path/to/GLM-5-nvfp4-v1", help="checkpoint directory on shared storage")
        pi.add_argument("--work-dir", default="/path/to/shared/glm5_hpc-work", help="shared work directory")
        pi.add_argument("--image", default="nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc3")
        pi.add_argument("--variant", choices=["source-build", "stock"], default="source-build")
        pi.add_argument("--source-repo", default="https://github.com/PerkzZheng/TensorRT-LLM.git")
        pi.add_argument("--source-branch", default="user/perkzz/glm-flash-trtllm-gen")
        pi.add_argument("--no-gpu-preflight", action="store_true", help="the nodes have no nvidia-smi")
        for action in ("validate", "show"):
            pa = psub.add_parser(action, help=f"{action} a profile (name or path)")
            pa.add_argument("profile", metavar="PROFILE")

    if s := command("doctor", "check the cluster is ready for a profile; exit 0 when every check passes"):
        s.add_argument("--profile", required=True)
    return p


def _route_arg(s: argparse.ArgumentParser) -> None:
    s.add_argument("--profile", help="run against this profile's cluster (its login node, if the profile has ssh:)")


def _wait_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--wait", action="store_true", help="block until healthy (exit 0) or failed (exit 1)")
    s.add_argument("--timeout", type=_positive, default=None, metavar="S", help="with --wait: give up after S seconds")


def _positive(text: str) -> float:
    """Seconds: a number above 0 (bad values exit 2 before anything is read or submitted)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def _concurrencies(text: str) -> tuple[int, ...]:
    from glm5_hpc.domain.bench import MAX_CONCURRENCY

    parts = text.split(",")
    if not all(p.isdigit() and 1 <= int(p) <= MAX_CONCURRENCY for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of concurrencies from 1 to {MAX_CONCURRENCY}")
    return tuple(int(p) for p in parts)


def _replicas(text: str) -> int:
    from glm5_hpc.domain.profile import MAX_REPLICAS

    if not text.isdigit() or not 1 <= int(text) <= MAX_REPLICAS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of replicas from 1 to {MAX_REPLICAS}")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 for a free one, up to 65535)")
    return int(text)


def _url(text: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL with a host, such as http://10.0.0.5:8000")
    return text


def _path(text: str) -> Path:
    from pathlib import Path

    return Path(text)


def _submitted(dep: Deployment, args: argparse.Namespace) -> int:
    assert dep.submitted is not None
    run_id, stages = dep.submitted
    if args.json and not args.wait:
        import json

        print(json.dumps({"name": dep.name, "run_id": run_id, "stages": stages}))
        return 0
    jobs = ", ".join(f"{s['stage']}={s['job_id'] or 'skipped'}" for s in stages)
    print(f"submitted deployment {dep.name} run {run_id}: {jobs}", flush=True)
    if not args.wait:
        return 0
    return _waited(dep, args)


def _waited(dep: Deployment, args: argparse.Namespace) -> int:
    st = dep.wait(args.timeout, lambda line: print(f"  {line}", flush=True))
    print(f"healthy: {st.endpoint} ({st.endpoint_kind})")
    print(f"completion: {st.completion}")
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from glm5_hpc.api import Cluster
    from glm5_hpc.errors import LiveJobsError

    cluster = Cluster(args.profile)
    try:
        dep = cluster.submit(args.name, rebuild=args.rebuild, replicas=args.replicas)
    except LiveJobsError as exc:
        if not args.wait or args.rebuild:
            raise
        dep = cluster.deployment(exc.name)
        print(f"deployment {dep.name} is already submitted (jobs {', '.join(exc.job_ids)}): waiting for it instead of "
              f"submitting a second chain beside it (glm5_hpc redeploy {dep.name} replaces it)", flush=True)  # fmt: skip
        return _waited(dep, args)
    return _submitted(dep, args)


def _cmd_redeploy(args: argparse.Namespace) -> int:
    from glm5_hpc.api import Cluster

    dep = Cluster().deployment(args.name)
    if args.no_downtime:
        report = lambda line: print(f"  {line}", flush=True)  # noqa: E731
        st = dep.redeploy(args.from_stage, True, args.profile, args.timeout, report).status()
        print(f"healthy: {st.stable_endpoint or st.endpoint} (serve job {st.route_job})")
        return 0
    return _submitted(dep.redeploy(args.from_stage, profile=args.profile), args)


def _cmd_scale(args: argparse.Namespace) -> int:
    from glm5_hpc.api import Cluster

    dep = Cluster().deployment(args.name)
    jobs = dep.scale(args.replicas, None if args.json else lambda line: print(f"  {line}", flush=True))
    if args.json:
        import json

        print(json.dumps({"jobs": jobs}))
    else:
        print(f"deployment {dep.name}: {args.replicas} replica(s)")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    import json
    import time

    from glm5_hpc.api import Cluster

    cluster = Cluster()
    refreshes = cluster.watch(args.names, args.interval) if args.watch else iter([(cluster.status(args.names), 0.0)])
    for statuses, asked_at in refreshes:
        failed = _unreadable(statuses)
        if args.json:
            text = json.dumps({"deployments": [s.to_json() for s in statuses]}, indent=2)
        else:
            text = "\n".join(format_status(st) for st in statuses) or "no deployments"
        if not args.watch:
            print(text, flush=True)
            return failed
        if sys.stdout.isatty():
            sys.stdout.write("\033[H\033[J")  # redraw in place
        asked = time.strftime("%H:%M:%S", time.localtime(asked_at))
        print(f"{text}\n-- {time.strftime('%H:%M:%S')}, health every {args.interval:g}s, Slurm as of {asked}; Ctrl-C to stop --",
              flush=True)  # fmt: skip
    return 0


def _unreadable(statuses: list[Status]) -> int:
    """Name each unreadable record on stderr (its line in the listing says why); exit code 1 if any."""
    from glm5_hpc.api import Phase

    bad = [st.name for st in statuses if st.phase is Phase.UNREADABLE]
    if bad:
        print(f"glm5_hpc: error: unreadable deployment record(s): {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


def format_status(st: Status) -> str:
    import time

    from glm5_hpc.api import Phase
    from glm5_hpc.domain.names import NODE_ONLY  # not domain.reach: it would import dataclasses

    if st.phase is Phase.UNREADABLE:
        return f"deployment {st.name}: {st.failure}"

    rows = [("STAGE", "JOB", "STATE", "NODE", "ELAPSED", "EXIT", "REASON")]
    rows += [
        (s.stage, s.job_id or "-", s.state, s.node or "-", s.elapsed or "-", s.exit_code or "-", s.reason) for s in st.stages
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    replacing = f", replacing run {st.replaces}" if st.replaces else ""
    lines = [f"deployment {st.name} (profile {st.profile}, run {st.run_id}{replacing}, {st.runs} run(s))"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"  endpoint: {st.endpoint or '-'}" + (f" ({st.endpoint_kind})" if st.endpoint_kind else ""))
    if st.router_job:
        stable = st.stable_endpoint or "not listening (router job not running)"
        on = f" on node {st.router_node}" + (", reachable on that node only" if st.stable_endpoint_scope == NODE_ONLY else "")
        lines.append(f"  router:   {stable} (job {st.router_job}{on if st.stable_endpoint else ''}), "
                     f"forwarding to serve job {st.route_job or '-'}"
                     + (f" of run {st.route_run}, not the current run" if st.route_run else ""))  # fmt: skip
    if st.warning:
        lines.append(f"  warning:  {st.warning}")
    if st.traffic:
        t = st.traffic
        lines.append(f"  traffic:  {t.get('requests_s', 0):g} requests/s, p50 {t.get('p50_ms', 0):g} ms over the last minute "
                     f"({t.get('requests', 0)} requests through the router)")  # fmt: skip
    if NODE_ONLY in (st.endpoint_scope, st.stable_endpoint_scope):
        lines.append(f"  reach:    from other machines, glm5_hpc probe/tunnel {st.name} go through the job on its node")
    if len(st.replicas) > 1:
        for r in st.replicas:
            counts = f", {r.in_flight} in flight, {r.served} served" if r.served is not None else ""
            why = f" ({r.reason})" if r.reason and not r.healthy else ""
            at = f" at {r.endpoint}" if r.endpoint else ""
            health = "healthy" if r.healthy else r.phase
            lines.append(f"  replica {r.replica}: job {r.job_id or '-'} {r.state} on {r.node or '-'}, {health}{why}{at}{counts}")
    if st.handovers or st.next_serve:
        lines.append(f"  handover: {st.handovers} so far; next: {st.next_serve or '-'}")
    detail = st.completion if st.healthy else st.health_reason
    lines.append(f"  health:   {'healthy' if st.healthy else st.phase}" + (f": {detail}" if detail else ""))
    if st.last_probe:
        p = st.last_probe
        at = time.strftime("%H:%M:%S", time.localtime(p.get("at") or 0))
        verdict = "ok" if p.get("ok") else "FAILED"
        lines.append(f"  probe:    {verdict} at {at}: {p.get('detail')}; restarts: {st.restarts}, requeues: {st.requeues}")
    if "prep" in st.recipe:
        files = st.recipe["prep"].get("files", [])
        described = [
            f"{f['file']} {'changed' if f.get('written') else 'unchanged'} (sha256 {f['sha256_after'][:12]})" for f in files
        ]
        lines.append("  prep:     " + "; ".join(described))
    if "image" in st.recipe:
        image = st.recipe["image"]
        trtllm = image.get("tensorrt_llm") or "not installed"
        lines.append(f"  image:    TensorRT-LLM {trtllm}: {image.get('fit')}: {image.get('message')}")
    if "flashinfer" in st.recipe:
        fi = st.recipe["flashinfer"]
        version = f"{fi['version']}: " if fi.get("version") else ""
        lines.append(f"  flashinfer: {version}{fi.get('state')}" + (" -> patched" if fi.get("changed") else ""))
    if st.failure:
        lines.append("  failure:  " + st.failure.replace("\n", "\n            "))
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    import json

    from glm5_hpc.api import Cluster

    statuses = Cluster().status()
    failed = _unreadable(statuses)
    if args.json:
        keys = ("name", "profile", "run_id", "runs", "phase", "healthy", "endpoint", "failure")
        print(json.dumps({"deployments": [{k: st.to_json()[k] for k in keys} for st in statuses]}, indent=2))
        return failed
    rows = [("NAME", "PROFILE", "RUN", "STAGES", "HEALTH", "ENDPOINT")]
    for st in statuses:
        states = " ".join(f"{s.stage}:{s.state}" for s in st.stages) or st.failure
        rows.append((st.name, st.profile, st.run_id, states, "healthy" if st.healthy else st.phase, st.endpoint or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return failed


def _cmd_logs(args: argparse.Namespace) -> int:
    from glm5_hpc.api import Cluster

    dep = Cluster().deployment(args.name)
    if args.follow:
        dep.follow(lambda text: print(text, flush=True), args.stage, args.lines)
    elif text := dep.logs(args.stage, args.lines):
        print(text, flush=True)
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from glm5_hpc.api import Cluster, probe
    from glm5_hpc.app.probe import RUNGS
    from glm5_hpc.errors import InputError

    if args.name is not None:
        result = Cluster().deployment(args.name).probe(args.url, args.model)
    elif args.url is not None:
        result = probe(args.url, args.model)
    else:
        raise InputError("give a deployment NAME or --url URL")
    url, verdicts = result
    if args.json:
        import json

        print(json.dumps({"url": url, "ok": result.ok, "verdicts": [v.to_json() for v in verdicts]}))
        return 0 if result.ok else 1
    print(f"probing {url}")
    for v in verdicts:
        print(f"  {v.rung:<10} {'ok' if v.ok else 'FAILED':<6} {v.detail}")
    for rung in RUNGS[len(verdicts) :]:
        print(f"  {rung:<10} {'-':<6} not reached")
    return 0 if result.ok else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    import json

    from glm5_hpc.api import Cluster, bench
    from glm5_hpc.domain.bench import BenchPlan, compare, table
    from glm5_hpc.errors import InputError

    if args.compare:
        if args.name is None:
            raise InputError("--compare A B needs the deployment NAME whose runs A and B are (or two result.json paths and NAME)")
        a, b = (
            Cluster().deployment(args.name).benchmark(args.compare[0]),
            Cluster().deployment(args.name).benchmark(args.compare[1]),
        )
        print(json.dumps({"a": a, "b": b}) if args.json else compare(a, b))
        return 0
    plan = BenchPlan(args.concurrency, args.input_len, args.output_len, args.requests, args.duration)
    options = {"tokenizer": args.tokenizer, "aiperf": args.aiperf, "plot": args.plot, "out_dir": args.output}
    report = (lambda _line: None) if args.json else (lambda line: print(line, flush=True))
    if args.name is not None:
        result = Cluster().deployment(args.name).bench(plan, url=args.url, model=args.model, report=report, **options)
    elif args.url is not None:
        result = bench(args.url, args.model, plan, report=report, **options)
    else:
        raise InputError("give a deployment NAME or --url URL")
    if args.json:
        print(json.dumps(result))
    else:
        print(table(result["rows"]))
        print(f"bench {result['id']}: exports in {result['artifacts']}, picture {result.get('plot')}")
        if result["verdict"]:
            print(f"FAILED: {result['verdict']}")
    return 1 if result["verdict"] else 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    from glm5_hpc.api import Cluster

    cancelled = Cluster().deployment(args.name).cancel()
    if args.json:
        import json

        print(json.dumps({"cancelled": cancelled}))
        return 0
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


def _cmd_cleanup(args: argparse.Namespace) -> int:
    from glm5_hpc.app.cleanup import cleanup
    from glm5_hpc.domain.cleanup import parse_age
    from glm5_hpc.errors import InputError

    try:
        older_than_s = parse_age(args.older_than)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    freed = cleanup(older_than_s, args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for f in freed:
        owner = f" ({f.removal.deployment} run {f.removal.run_id})" if f.removal.run_id else ""
        print(f"{verb} {f.removal.path}{owner}: {f.removal.why}, {f.bytes / 1e6:.1f} MB")
    total = sum(f.bytes for f in freed) / 1e6
    print(f"{verb} {len(freed)} item(s), {total:.1f} MB" if freed else "nothing to remove")
    return 0


def _cmd_patch_flashinfer(args: argparse.Namespace) -> int:
    from glm5_hpc.adapters.flashinfer_files import patch_flashinfer

    print(patch_flashinfer(args.path, check=args.check).line())  # drift raises: exit 1 with the file named
    return 0


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


def _cmd_remote(args: argparse.Namespace) -> int:
    from glm5_hpc.adapters.resources import load_profile
    from glm5_hpc.adapters.shell import SSHShell
    from glm5_hpc.app.remote import setup
    from glm5_hpc.errors import InputError

    profile = load_profile(args.profile)
    if profile.ssh is None:
        raise InputError(f"profile {profile.source} has no ssh: block; remote setup is for profiles that name a login node")
    shell = SSHShell(profile.ssh)
    try:
        print(f"remote: {setup(profile, shell)}")
    finally:
        shell.close()
    return 0


def _cmd_tunnel(args: argparse.Namespace) -> int:
    from glm5_hpc.adapters.resources import load_profile
    from glm5_hpc.adapters.shell import SSHShell
    from glm5_hpc.app.tunnel import Tunnel, endpoint_reader, upstream_opener

    profile = load_profile(args.profile) if args.profile else None
    shell = SSHShell(profile.ssh) if profile is not None and profile.ssh is not None else None
    try:
        tunnel = Tunnel(args.local_port, endpoint_reader(args.name, profile, shell), upstream_opener(profile, shell),
                        lambda line: print(line, flush=True))  # fmt: skip
        tunnel.serve()
    finally:
        if shell is not None:
            shell.close()
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    from glm5_hpc.adapters.resources import load_profile
    from glm5_hpc.app import profiles

    if args.profile_command == "validate":
        profile = load_profile(args.profile)
        print(f"profile {profile.name} is valid ({profile.source})")
        return 0
    if args.profile_command == "show":
        print(profiles.show(load_profile(args.profile)), end="")
        return 0
    from glm5_hpc.adapters.shell import LocalShell, SSHShell
    from glm5_hpc.domain.profile import Ssh

    ssh_block: dict[str, Any] | None = None
    if args.ssh:
        user, _, host_port = args.ssh.rpartition("@")
        host, _, port = host_port.partition(":")
        ssh_block = {k: v for k, v in {"host": host, "user": user or None, "port": int(port or 22),
                     "identity_file": args.identity_file, "known_hosts": args.known_hosts}.items() if v is not None}  # fmt: skip
    shell = SSHShell(Ssh.model_validate(ssh_block)) if ssh_block else LocalShell()
    values = {"model": args.model, "work_dir": args.work_dir, "image": args.image, "variant": args.variant,
              "repo": args.source_repo, "branch": args.source_branch}  # fmt: skip
    output = args.output or _path("~/.config/glm5_hpc/profiles").expanduser() / f"{args.name}.yaml"
    try:
        path = profiles.init(args.name, shell, output, values, ssh_block, not args.no_gpu_preflight, args.force)
    finally:
        shell.close()
    print(f"wrote {path}; check it, then: glm5_hpc profile validate {path} && glm5_hpc doctor --profile {path}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from glm5_hpc.api import Cluster

    with Cluster(args.profile) as cluster:
        checks = cluster.doctor()
    print(f"doctor: profile {cluster.profile.name} on {cluster.where}")  # type: ignore[union-attr]
    for c in checks:
        print(f"  {'ok  ' if c.ok else 'FAIL'}  {c.name:<28} {c.detail}" + (f"\n        fix: {c.hint}" if c.hint else ""))
    failed = sum(not c.ok for c in checks)
    print(f"{len(checks) - failed} of {len(checks)} checks passed")
    return 1 if failed else 0


# Commands that act on a cluster: with a profile that names a login node (ssh:), they run there.
FORWARDED = {"submit", "redeploy", "scale", "status", "list", "logs", "probe", "bench", "cancel", "render"}


def _forward_if_remote(args: argparse.Namespace, argv: list[str]) -> int | None:
    if args.command not in FORWARDED or not getattr(args, "profile", None):
        return None  # decided before importing anything: commands without a profile start fast
    from glm5_hpc.adapters.login_node import on_login_node

    if on_login_node():
        return None
    from glm5_hpc.adapters.resources import load_profile

    profile = load_profile(args.profile)
    if profile.ssh is None:
        return None
    from glm5_hpc.adapters.shell import SSHShell
    from glm5_hpc.app.remote import forward

    shell = SSHShell(profile.ssh)
    try:
        return forward(profile, argv, shell)
    finally:
        shell.close()


COMMANDS = {
    "submit": _cmd_submit,
    "redeploy": _cmd_redeploy,
    "scale": _cmd_scale,
    "status": _cmd_status,
    "list": _cmd_list,
    "logs": _cmd_logs,
    "probe": _cmd_probe,
    "bench": _cmd_bench,
    "cancel": _cmd_cancel,
    "cleanup": _cmd_cleanup,
    "prep": _cmd_prep,
    "patch-source": _cmd_patch_source,
    "patch-flashinfer": _cmd_patch_flashinfer,
    "render": _cmd_render,
    "preflight": _cmd_preflight,
    "remote": _cmd_remote,
    "tunnel": _cmd_tunnel,
    "profile": _cmd_profile,
    "doctor": _cmd_doctor,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser(argv).parse_args(argv)
    try:
        forwarded = _forward_if_remote(args, argv)
        if forwarded is not None:
            return forwarded
        return COMMANDS[args.command](args)
    except Glm5Error as exc:
        if args.debug:
            raise
        print(f"glm5_hpc: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if args.command in ("status", "tunnel"):
            return 0
        after = " (jobs submitted before it are recorded and keep running: glm5_hpc status)"
        print(f"glm5_hpc: interrupted{after if args.command in ('submit', 'redeploy') else ''}", file=sys.stderr)
        return 130
