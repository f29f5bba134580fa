"""`glm5_hpc doctor --profile P`: is this cluster ready for the profile? Each check passes or
fails with a fix hint; the commands run where the cluster is (locally, or on the login node
over SSH), and one short job checks a compute node of the serve partition."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from glm5_hpc.adapters.shell import Shell
from glm5_hpc.domain.image_fit import VERSION_CODE, fit
from glm5_hpc.domain.profile import Profile

COMPUTE_CHECK_TIMEOUT_S = 300.0  # the check job may wait in the queue


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:200]


def run_checks(profile: Profile, shell: Shell) -> list[Check]:
    checks: list[Check] = []

    def check(name: str, argv: list[str], hint: str, timeout_s: float = 60, expect: str = "") -> bool:
        r = shell.run(argv, timeout_s=timeout_s)
        ok = r.rc == 0 and expect in r.stdout
        detail = _first_line(r.stdout) if ok else f"rc={r.rc}: {_first_line(r.stderr) or _first_line(r.stdout)}"
        checks.append(Check(name, ok, detail or "ok", "" if ok else hint))
        return ok

    check("sbatch", ["sbatch", "--version"], "install the Slurm client commands where glm5_hpc runs")
    check("slurmctld", ["scontrol", "ping"], "the controller does not answer; ask the cluster's admins", expect="UP")
    check("accounting", ["sacct", "-n", "-X", "-S", "now", "-o", "JobID"],
          "sacct must work (slurmdbd): glm5_hpc reads finished jobs' states and exit codes from it")  # fmt: skip
    stages = [(n, s) for n, s in (("prep-model", profile.stages.prep_model), ("build-wheel", profile.stages.build_wheel),
                                  ("serve", profile.stages.serve)) if s is not None]  # fmt: skip
    for partition in sorted({s.partition for _, s in stages}):
        users = ", ".join(n for n, s in stages if s.partition == partition)
        check(f"partition {partition}", ["sinfo", "-h", "-p", partition, "-o", "%P %a %D nodes"],
              f"stages {users} use partition {partition!r}; `sinfo -s` lists the partitions", expect=partition)  # fmt: skip
    serve = profile.stages.serve
    if serve.gpus:
        want = f"gpu:{serve.gpu_type}:" if serve.gpu_type else "gpu"
        check(f"gres {serve.gres}", ["sinfo", "-h", "-p", serve.partition, "-o", "%G"],
              f"partition {serve.partition} shows no {want} gres; fix stages.serve.gpu_type/gpus", expect=want)  # fmt: skip
    model = profile.model.path
    check("model path", ["test", "-r", f"{model}/config.json"],
          f"{model}/config.json is not readable from {shell.where}; fix model.path")  # fmt: skip
    probe = f"{profile.work_dir}/.glm5_hpc-doctor"
    check("work dir writable", ["sh", "-c", f"mkdir -p {shlex.quote(profile.work_dir)} && touch {shlex.quote(probe)} && "
                                            f"rm -f {shlex.quote(probe)} && echo writable"],
          f"work_dir {profile.work_dir} must be writable shared storage", expect="writable")  # fmt: skip
    state = "${GLM5_HPC_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/glm5_hpc}"
    mode = (
        f'd={state}; if [ -n "$(find "$d" -maxdepth 0 \\( -perm /022 -o ! -user "$(id -u)" \\) 2>/dev/null)" ]; '
        'then echo "writable by others"; else echo "private"; fi'
    )
    check("state dir private", ["sh", "-c", mode],
          "the state directory is writable by others or not yours; point GLM5_HPC_STATE_DIR at a directory of your own",
          expect="private")  # fmt: skip
    c = profile.container
    if c.runtime == "docker":
        node_cmd = f"command -v {c.binary} && {c.binary} image inspect {shlex.quote(c.image)} >/dev/null && echo image-present"
        hint = f"{c.binary} or the image {c.image} is missing on partition {serve.partition}'s nodes; pull or import it there"
    elif c.runtime == "apptainer":
        node_cmd = f"command -v {c.binary} && test -r {shlex.quote(c.image)} && echo image-present"
        hint = f"{c.binary} or the image file {c.image} is missing on partition {serve.partition}'s nodes"
    elif c.runtime == "pyxis":
        node_cmd = "srun --help | grep -q container-image && echo image-present"
        hint = "pyxis (srun --container-image) is not available on the compute nodes"
    else:
        node_cmd = "command -v python3 && echo image-present"
        hint = "runtime bare needs python3 on the compute nodes"
    job = ["srun", "-p", serve.partition, "-N", "1", "-n", "1", "--mem=100M", "-t", "5", "-J", "glm5-doctor"]
    if check(f"runtime on a {serve.partition} node", [*job, "sh", "-c", node_cmd],
             hint, timeout_s=COMPUTE_CHECK_TIMEOUT_S, expect="image-present"):  # fmt: skip
        checks.append(_image_fit(profile, shell, job))
        if c.runtime == "docker":
            checks.append(_orphan_containers(profile, shell, job))
    return checks


ORPHANS = r"""queued=" $(squeue -h -u "$(id -un)" -o %i | tr '\n' ' ') " || exit 3
for c in $(BIN ps -a --filter label=glm5_hpc.cluster="$SLURM_CLUSTER_NAME" --format '{{.Names}}'); do
  case "$queued" in *" ${c##*-} "*) ;; *) echo "orphan $c" ;; esac
done
echo "scanned $(hostname)"
"""


def _orphan_containers(profile: Profile, shell: Shell, job: list[str]) -> Check:
    """Containers of glm5_hpc jobs that have left the queue, on the node the check job ran on (a
    job's next run on that node removes its deployment's; this names them before that)."""
    binary = profile.container.binary
    r = shell.run([*job, "sh", "-c", ORPHANS.replace("BIN", shlex.quote(binary))], timeout_s=COMPUTE_CHECK_TIMEOUT_S)
    lines = r.stdout.split("\n")
    scanned = next((ln.split()[1] for ln in lines if ln.startswith("scanned ")), "")
    orphans = [ln.split()[1] for ln in lines if ln.startswith("orphan ")]
    name = "no container outlives its job"
    if r.rc != 0 or not scanned:
        return Check(
            name, False, f"rc={r.rc}: {_first_line(r.stderr)}", "squeue and the container engine must answer on the nodes"
        )
    if orphans:
        hint = f"on node {scanned}: {binary} rm -f {' '.join(orphans)} (their jobs have ended; they may hold GPUs)"
        return Check(name, False, f"{len(orphans)} container(s) on {scanned} whose job has ended: {', '.join(orphans)}", hint)
    return Check(name, True, f"none on {scanned}")


def _image_fit(profile: Profile, shell: Shell, job: list[str]) -> Check:
    """The image's TensorRT-LLM, read in the container on a serve node, against recipe.variant."""
    c, code = profile.container, shlex.quote(VERSION_CODE)
    name = f"TensorRT-LLM in the image fits recipe.variant {profile.recipe.variant}"
    run = {"docker": f"{c.binary} run --rm --network none {shlex.quote(c.image)} python3 -c {code}",
           "apptainer": f"{c.binary} exec {shlex.quote(c.image)} python3 -c {code}", "bare": f"python3 -c {code}"}  # fmt: skip
    if c.runtime not in run:
        return Check(name, True, "checked when the serve job starts (pyxis images are pulled by the job)")
    r = shell.run([*job, "sh", "-c", run[c.runtime]], timeout_s=COMPUTE_CHECK_TIMEOUT_S)
    lines = r.stdout.split()
    if r.rc != 0 or not lines:
        return Check(name, False, f"rc={r.rc}: {_first_line(r.stderr)}", "python3 must run in the image")
    verdict = fit(profile.recipe.variant, None if lines[-1] == "none" else lines[-1], c.image)
    return Check(name, verdict.state != "refused", verdict.message, verdict.message if verdict.state == "refused" else "")
