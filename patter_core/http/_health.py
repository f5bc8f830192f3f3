"""The health and readiness answers a load balancer or an orchestrator reads.

``GET /health`` and ``GET /ready`` answer 200 ``{"status": "ok", ...}`` while
the instance takes new calls, and 503 ``{"status": "draining", ...}`` from
the moment a shutdown begins, while its live calls finish: a balancer's
health check (nginx ``max_fails``, HAProxy ``option httpchk``, a Kubernetes
readiness probe) takes the instance out of rotation at once, and nothing new
is sent to it. Both report the live calls and the version.
"""

from __future__ import annotations

import json

from ._types import HttpResponse

__all__ = ["health_response"]


def health_response(*, draining: bool, calls: int, version: str) -> HttpResponse:
    body = {
        "status": "draining" if draining else "ok",
        "mode": "local",
        "calls": calls,
        "version": version,
    }
    return HttpResponse(
        status=503 if draining else 200,
        headers=(("content-type", "application/json"), ("cache-control", "no-store")),
        body=json.dumps(body).encode(),
    )
