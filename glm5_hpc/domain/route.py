"""The route: which serve job of a deployment takes its traffic. Pure.

Each replica of a deployment (serve.replicas) has its own route: route.json for replica 0,
route-r<i>.json for replica i; the router spreads requests over the routes it finds.
A serve job claims its replica's route when it is healthy by the full probe ladder, and only if it is
newer than the current holder: Slurm job ids grow with submission order, so a handover successor
or a redeployed job takes over from its predecessor, and a predecessor recovering from a restart
never takes the traffic back. A job whose route has moved to a newer job retires.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Route:
    job_id: str
    url: str
    at: float
    replica: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_route(doc: dict[str, Any]) -> Route | None:
    try:
        return Route(str(doc["job_id"]), str(doc["url"]), float(doc["at"]), int(doc.get("replica", 0)))
    except (KeyError, TypeError, ValueError):
        return None


ROUTE_FILE = re.compile(r"^route(?:-r(\d+))?\.json$")  # route.json, route-r1.json ... in the deployment's directory


def _order(job_id: str) -> tuple[int, str]:
    head = job_id.split("_", 1)[0]
    return (int(head), job_id) if head.isdigit() else (-1, job_id)


def may_claim(current: Route | None, job_id: str) -> bool:
    """May `job_id` take the route from `current`?"""
    return current is None or current.job_id == job_id or _order(job_id) > _order(current.job_id)


def superseded(current: Route | None, job_id: str) -> bool:
    """Has a newer job taken the route from `job_id`?"""
    return current is not None and _order(current.job_id) > _order(job_id)


NO_NODE_REASONS = frozenset({"Resources", "Priority"})  # Slurm's pending reasons when no node is free for a job


def slot_to_free(filling: int, old_serving: set[int], new_healthy: int) -> int | None:
    """A rolling replacement whose new replica for slot `filling` finds no free node: the old slot
    to take out first, so that the new one starts on its node. The same slot if it still serves,
    else the highest old one; None if that would leave no healthy replica (one replica: no surge, no room)."""
    if not old_serving or len(old_serving) + new_healthy < 2:
        return None
    return filling if filling in old_serving else max(old_serving)
