"""Read an installed flashinfer's sources and apply the recipe's edit where it is needed. Stdlib
only: it runs inside the serve container too (jobs/patch_flashinfer.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from glm5_hpc.adapters.files import write_atomic
from glm5_hpc.domain.flashinfer_check import VARIABLE, Assessment, FlashinferState, assess
from glm5_hpc.domain.patching import apply
from glm5_hpc.domain.recipe_patches import FLASHINFER_MLA_CHECK
from glm5_hpc.errors import InputError, PatchDriftError


@dataclass(frozen=True)
class FlashinferOutcome:
    package: Path
    version: str
    assessment: Assessment
    changed: bool

    @property
    def file(self) -> str:
        return str(self.package / self.assessment.file) if self.assessment.file else ""

    def line(self) -> str:
        where = f" ({self.file})" if self.file else ""
        done = " -> patched" if self.changed else ""
        return f"flashinfer {self.version}: {self.assessment.state}{done}{where}: {self.assessment.detail}"

    def to_json(self) -> dict[str, object]:
        return {"patch": FLASHINFER_MLA_CHECK.name, "state": self.assessment.state.value, "changed": self.changed,
                "file": self.file, "version": self.version, "detail": self.assessment.detail}  # fmt: skip


def package_dir(path: Path) -> Path:
    """PATH is a flashinfer package directory, or a site-packages directory holding one."""
    for candidate in (path, path / "flashinfer"):
        if candidate.name == "flashinfer" and (candidate / "__init__.py").is_file():
            return candidate
    raise InputError(f"{path} is neither a flashinfer package directory nor a directory holding flashinfer/__init__.py")


def version_of(package: Path) -> str:
    """The installed version from the package's dist-info beside it, else its __version__ line."""
    for meta in sorted(package.parent.glob("flashinfer_python-*.dist-info/METADATA")):
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("Version: "):
                return line.split(": ", 1)[1].strip()
    for line in (package / "__init__.py").read_text(errors="replace").splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return "(version unknown)"


def sources(package: Path) -> dict[str, str]:
    """Every module of the package that mentions qk_nope_head_dim, wherever upstream moved the check."""
    found = {}
    for file in sorted(package.rglob("*.py")):
        text = file.read_text(errors="replace")
        if VARIABLE in text:
            found[str(file.relative_to(package))] = text
    return found


def patch_flashinfer(path: Path, check: bool = False) -> FlashinferOutcome:
    """Assess, and apply the recipe's edit when it is needed (never with `check`). Drift raises,
    having written nothing; a write is atomic, so a file is never half-written."""
    package = package_dir(path)
    texts = sources(package)
    result = assess(texts)
    outcome = FlashinferOutcome(package, version_of(package), result, changed=False)
    if result.state is FlashinferState.DRIFT:
        raise PatchDriftError(f"flashinfer {outcome.version}: drift in {outcome.file}: {result.detail}")
    if result.state is not FlashinferState.NEEDED or check:
        return outcome
    write_atomic(package / result.file, apply(FLASHINFER_MLA_CHECK, texts[result.file]).encode())
    after = assess(sources(package))
    if after.state is not FlashinferState.APPLIED:
        raise PatchDriftError(f"flashinfer: {outcome.file} still rejects 192 after the edit ({after.detail}); check it by hand")
    return FlashinferOutcome(package, outcome.version, result, changed=True)
