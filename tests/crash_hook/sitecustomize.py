"""Test equipment, loaded only by tests that put this directory on PYTHONPATH: the glm5_hpc
process dies (as with SIGKILL, an OOM kill or a dropped SSH session) right after sbatch returns
for the job named by GLM5_HPC_TEST_EXIT_AFTER_SBATCH (a stage name, or "router"), before the job
id can be recorded."""

import os

_stage = os.environ.get("GLM5_HPC_TEST_EXIT_AFTER_SBATCH")
if _stage and "SLURM_JOB_ID" not in os.environ:  # the CLI only, never the jobs that inherit its environment
    from glm5_hpc.adapters import slurm

    _submit = slurm.submit

    def _submit_then_die(sub, fn, *args):  # type: ignore[no-untyped-def]
        job_id = _submit(sub, fn, *args)
        if sub.job_name.endswith(f"-{_stage}"):
            os._exit(137)
        return job_id

    slurm.submit = _submit_then_die
