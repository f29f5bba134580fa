"""A whole deployment driven through glm5_hpc.api alone, on the local cluster: typed values back,
nothing printed, the same records the CLI reads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from glm5_hpc.api import Cluster, Deployment, Phase
from glm5_hpc.errors import InputError
from tests.conftest import glm5, squeue_ids, status_json

pytestmark = pytest.mark.usefixtures("cluster")


def test_submit_wait_status_probe_redeploy_cancel(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = Cluster(make_profile("api", serve={"port": "auto"}))
    cleanup_deployments.append("api")
    assert "serve-config.yaml" in cluster.render("api")
    dep = cluster.submit(name="api")
    progress: list[str] = []
    st = dep.wait(timeout_s=240, on_progress=progress.append)
    assert st.healthy and st.phase is Phase.READY and "Paris" in st.completion
    assert any(line.startswith("server: ready at ") for line in progress)
    assert [s.stage for s in st.stages] == ["prep-model", "build-wheel", "serve"] and st.stages[2].state == "RUNNING"
    assert dep.endpoint == st.endpoint == status_json("api")["endpoint"]  # what the CLI shows
    assert dep.submitted is not None and dep.submitted.run_id == st.run_id
    assert [s["job_id"] for s in dep.submitted.stages] == [s.job_id for s in st.stages]
    here = Cluster()  # no profile: the deployments recorded where this runs
    assert [s.run_id for s in here.status(["api"])] == [st.run_id]
    statuses, asked_at = next(here.watch(["api"], interval_s=1.0))
    assert statuses[0].healthy and asked_at > 0

    result = dep.probe()  # the serve node's loopback: through a step of the serve job
    assert result.ok and [v.rung for v in result.verdicts] == ["health", "models", "completion"]
    assert "Application startup complete." in dep.logs("serve", lines=200)

    first_serve = st.stages[2].job_id
    dep.redeploy()  # unchanged inputs: only serve is submitted again
    again = dep.wait(timeout_s=240)
    assert again.healthy and again.run_id != st.run_id and again.stages[2].job_id != first_serve
    assert [s.state for s in again.stages[:2]] == ["SKIPPED", "SKIPPED"]

    assert [d.name for d in cluster.deployments()] == ["api"] and cluster.deployment("api").name == "api"
    cancelled = dep.cancel()
    assert cancelled == [again.stages[2].job_id] and not set(cancelled) & squeue_ids()
    assert dep.cancel() == []
    assert capsys.readouterr().out == ""  # the API prints nothing
    assert glm5("status", "api", check=True).stdout.startswith("deployment api")  # the CLI reads the same record


def test_bad_input_is_an_error_naming_it(make_profile: Callable[..., Path]) -> None:
    cluster = Cluster(make_profile("apierr"))
    with pytest.raises(InputError, match="no deployment named 'nosuch'"):
        cluster.deployment("nosuch")
    with pytest.raises(InputError, match=r"deployment name .\.\./x. must match"):
        Deployment("../x")
    with pytest.raises(InputError, match=r"submit needs a profile: Cluster\(PROFILE\)"):
        Cluster().submit("x")
    with pytest.raises(InputError, match=r"2 replicas need router.enabled in .*apierr.yaml"):
        cluster.submit("x", replicas=2)  # before anything is submitted
