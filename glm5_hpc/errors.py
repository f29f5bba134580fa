"""One base exception; every message says what failed, where, and what to do next."""


class Glm5Error(Exception):
    """Base of every error glm5_hpc reports to the user as one line (exit code 2 for input, 1 otherwise)."""

    exit_code = 1


class InputError(Glm5Error):
    """Bad input: a profile, a checkpoint file, an argument. Nothing was changed or submitted."""

    exit_code = 2


class ProfileError(InputError):
    pass


class PrepError(InputError):
    pass


class PatchDriftError(Glm5Error):
    """Neither the old nor the new text of a patch is present: the upstream source changed."""


class SlurmError(Glm5Error):
    pass


class StateError(Glm5Error):
    """A deployment record is missing, corrupt or locked."""


class LiveJobsError(StateError):
    """The deployment already has jobs in Slurm: a second chain would run beside them."""

    def __init__(self, name: str, job_ids: list[str]) -> None:
        super().__init__(
            f"deployment {name!r} still has jobs in Slurm ({', '.join(job_ids)}); "
            f"use glm5_hpc redeploy {name}, or cancel it first, or choose another --name"
        )
        self.name = name
        self.job_ids = job_ids
