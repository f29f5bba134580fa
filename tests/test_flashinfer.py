"""flashinfer, right on every release: `glm5_hpc patch-flashinfer` against the real released
`flashinfer-python` wheels, fetched from the package registry at test time and cached between runs
(never committed; a failed fetch fails the test), and against forms no release has (drift)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from packaging.version import Version

import glm5_hpc
from glm5_hpc.domain.flashinfer_check import FlashinferState, assess
from tests.conftest import glm5

CACHE = Path(os.environ.get("GLM5_HPC_TEST_WHEELS", "/var/cache/glm5_hpc-tests/flashinfer"))
SMALL = 10_000_000  # 0.6.x wheels are pure and under 10 MB; 0.7.x carry ~100 MB of kernels
EXPECTED = {  # shared/FACTS-style table: where the check lives and what GLM-5 (192) needs
    "0.6.0": ("needed", "flashinfer/mla.py"),
    "0.6.4": ("needed", "flashinfer/mla.py"),
    "0.6.5": ("not needed", "flashinfer/mla.py"),  # `if not (... == 128 or ... == 192)`: fixed upstream
    "0.6.6": ("not needed", ""),  # the check is gone
    "0.6.8": ("not needed", ""),  # flashinfer/mla/ is a package, no check in it
}


def newest_small_release() -> str:
    """The newest final release whose pure wheel is under 10 MB, asked of the registry now."""
    try:
        releases = httpx.get("https://pypi.org/pypi/flashinfer-python/json", timeout=60).raise_for_status().json()["releases"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        pytest.fail(f"cannot ask the package registry for flashinfer-python releases: {exc}", pytrace=False)
    small = [
        v for v, files in releases.items()
        if not Version(v).is_prerelease
        and any(f["filename"].endswith("py3-none-any.whl") and f["size"] < SMALL and not f.get("yanked") for f in files)
    ]  # fmt: skip
    return max(small, key=Version)


def wheel(version: str) -> Path:
    found = sorted(CACHE.glob(f"flashinfer_python-{version}-py3-none-any.whl"))
    if found:
        return found[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-d", str(CACHE), f"flashinfer-python=={version}"]  # fmt: skip
    proc = subprocess.run(pip, capture_output=True, text=True, timeout=600)
    found = sorted(CACHE.glob(f"flashinfer_python-{version}-py3-none-any.whl"))
    if proc.returncode != 0 or not found:
        pytest.fail(f"cannot fetch flashinfer-python=={version} (rc={proc.returncode}): {proc.stderr[-500:]}", pytrace=False)
    return found[0]


def site_packages(version: str, tmp_path: Path) -> Path:
    """The wheel installed as pip lays it out: flashinfer/ and its dist-info, in a site-packages directory."""
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel(version)) as zf:
        zf.extractall(site, [n for n in zf.namelist() if n.startswith(("flashinfer/", "flashinfer_python-"))])
    return site


def digest(tree: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(tree.rglob("*.py")):
        h.update(str(f.relative_to(tree)).encode() + f.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("version", [*EXPECTED, "newest"])
def test_each_release_gets_what_it_needs(version: str, tmp_path: Path) -> None:
    version = newest_small_release() if version == "newest" else version
    state, file = EXPECTED.get(version, ("not needed", ""))  # every release after 0.6.8 has no check of its own
    site = site_packages(version, tmp_path)
    before = digest(site)
    checked = glm5("patch-flashinfer", str(site), "--check")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"flashinfer {version}: {state}"), checked.stdout
    assert (f"({site / file})" in checked.stdout) if file else ("(" + str(site) not in checked.stdout)
    assert digest(site) == before  # --check changes nothing

    patched = glm5("patch-flashinfer", str(site / "flashinfer"))  # a package directory works as well
    assert patched.returncode == 0, patched.stderr
    if state == "needed":
        assert patched.stdout.startswith(f"flashinfer {version}: needed -> patched ({site / file})")
        again = glm5("patch-flashinfer", str(site), check=True)
        assert again.stdout.startswith(f"flashinfer {version}: already applied ({site / file})")
        assert "    if False and qk_nope_head_dim != 128:\n" in (site / file).read_text()
    else:
        assert patched.stdout == checked.stdout and digest(site) == before  # nothing to do, nothing written


@pytest.mark.parametrize(
    "check",
    [
        "if qk_nope_head_dim not in (128,):",  # rejects 192 in a form the recipe's edit does not know
        "if qk_nope_head_dim != SUPPORTED_DIM:",  # cannot be evaluated: a person must look
        "if qk_nope_head_dim != 128 and True:",
    ],
)
def test_a_check_that_still_rejects_192_is_drift_and_nothing_is_written(check: str, tmp_path: Path) -> None:
    site = site_packages("0.6.4", tmp_path)
    mla = site / "flashinfer" / "mla.py"
    mla.write_text(mla.read_text().replace("if qk_nope_head_dim != 128:", check, 1))
    before = digest(site)
    proc = glm5("patch-flashinfer", str(site))
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"flashinfer 0.6.4: drift in {mla}" in proc.stderr and "check it by hand" in proc.stderr, proc.stderr
    assert digest(site) == before


def test_forms_upstream_may_take() -> None:
    def state(body: str, name: str = "flashinfer/mla/_utils.py") -> FlashinferState:
        return assess({name: f"def check(qk_nope_head_dim):\n{body}"}).state

    raising = "        raise ValueError(qk_nope_head_dim)\n"
    assert state("    if qk_nope_head_dim != 128:\n" + raising) is FlashinferState.NEEDED  # the recipe's line, wherever it moved
    assert state("    if qk_nope_head_dim not in (128, 192):\n" + raising) is FlashinferState.NOT_NEEDED
    assert state("    if qk_nope_head_dim > 256:\n" + raising) is FlashinferState.NOT_NEEDED
    assert state("    if qk_nope_head_dim != 128:\n        warn()\n") is FlashinferState.NOT_NEEDED  # does not raise
    assert state("    if qk_nope_head_dim % 64:\n" + raising) is FlashinferState.DRIFT  # cannot be evaluated safely
    twice = "    if qk_nope_head_dim != 128:\n" + raising
    assert state(twice + twice) is FlashinferState.DRIFT  # two rejecting checks: which one to edit is not known
    assert assess({"flashinfer/mla.py": "def f(:\n"}).state is FlashinferState.DRIFT  # does not parse


def test_the_serve_stage_step_fails_on_drift_naming_the_file(tmp_path: Path) -> None:
    """What the serve container runs (`python3 -m jobs.patch_flashinfer`), with the tool's packages
    and a drifted real flashinfer on its path: exit 1, the file named in its log and its record."""
    site = site_packages("0.6.4", tmp_path)
    mla = site / "flashinfer" / "mla.py"
    mla.write_text(mla.read_text().replace("if qk_nope_head_dim != 128:", "if qk_nope_head_dim not in (128,):", 1))
    record = tmp_path / "flashinfer.json"
    tool = Path(glm5_hpc.__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": f"{tool}:{site}"}
    proc = subprocess.run([sys.executable, "-m", "jobs.patch_flashinfer", "--record", str(record)],
                          capture_output=True, text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1 and f"drift in {mla}" in proc.stderr, proc.stderr
    doc = json.loads(record.read_text())
    assert doc["state"] == "drift" and str(mla) in doc["error"]
