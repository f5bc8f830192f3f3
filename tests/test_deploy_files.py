"""The deploy files, checked as far as this machine can (no container runtime,
no cluster): they parse, and they carry what a reviewer would check.

The nginx config runs for real in tests/test_deploy_nginx.py.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from patter_anyio import ConfigError
from patter_anyio._config import config_from_args

ROOT = Path(__file__).resolve().parents[1]


def serve_flags(command: str) -> list[str]:
    """The ``serve`` arguments of a shell command line, parsed by our own CLI parser."""
    words = shlex.split(command.replace('\\"', '"'))
    words = words[words.index("serve") + 1 :]
    return [w.replace("${PORT}", "8000").replace("$PORT", "8000") for w in words]


def grace_of(flags: list[str], env: dict[str, str] | None = None) -> float:
    env = {"PATTER_STREAM_SECRET": "x" * 32, **(env or {})}
    _, config = config_from_args(["serve", *flags], env)
    return config.limits.shutdown_grace


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.replace("\\\n", " ").splitlines() if line.strip()]
    instructions = [line.split()[0] for line in lines if not line.lstrip().startswith("#")]
    known = {"FROM", "ENV", "WORKDIR", "COPY", "RUN", "USER", "EXPOSE", "HEALTHCHECK", "STOPSIGNAL", "CMD"}
    assert set(instructions) <= known and instructions[0] == "FROM"
    assert re.search(r"^FROM python:3\.1[1-9]-slim$", text, re.M)
    # Non-root, with the sources it copies present in the checkout.
    user = re.search(r"^USER (\S+)$", text, re.M)
    assert user and user.group(1) not in ("root", "0")
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert "/health" in next(line for line in lines if line.startswith("HEALTHCHECK"))
    cmd = next(line for line in lines if line.startswith("CMD "))
    flags = serve_flags(json.loads(cmd[4:])[-1])  # the exec-form JSON list; its shell command last
    assert flags[:2] == ["--host", "0.0.0.0"] and "--port" in flags
    grace_of(flags)  # our own parser accepts every flag


def test_compose() -> None:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = doc["services"]
    replicas = [name for name, svc in services.items() if "build" in svc]
    assert len(replicas) == 2
    nginx = services["nginx"]
    assert set(nginx["depends_on"]) == set(replicas)
    assert any(v.startswith("./nginx.conf:") for v in nginx["volumes"])
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    for name in replicas:
        svc = services[name]
        assert f"server {name}:8000" in conf
        env = svc["environment"]
        assert "PATTER_STREAM_SECRET" in env and "PATTER_WEBHOOK_URL" in env
        flags = serve_flags(svc["command"][-1])
        grace = grace_of(flags, {"PATTER_SHUTDOWN_GRACE": env["PATTER_SHUTDOWN_GRACE"]})
        assert "--trusted-proxy" in flags
        assert float(svc["stop_grace_period"].rstrip("s")) > grace


def test_kubernetes() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Deployment", "Service"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    flags = serve_flags(container["args"][-1])
    grace = grace_of(flags)
    assert pod["terminationGracePeriodSeconds"] > grace + 5  # preStop sleeps 5 s first
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert "tcpSocket" in container["livenessProbe"]  # /health is 503 while draining
    assert container["lifecycle"]["preStop"]["exec"]["command"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "valueFrom" in e
    }
    assert secrets["PATTER_STREAM_SECRET"] == "patter"
    service = kinds["Service"]
    assert service["spec"]["selector"] == kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]


def test_systemd_unit() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "patter-local.service")
    service = unit["Service"]
    flags = serve_flags(service["ExecStart"])
    assert service["ExecStart"].split()[0].endswith("/patter-local")
    assert service["KillSignal"] == "SIGTERM"
    assert float(service["TimeoutStopSec"]) > grace_of(flags)
    assert service["User"] not in ("root", "0")
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_serve_flags_helper_refuses_what_the_cli_refuses() -> None:
    try:
        grace_of(["--shutdown-grace", "-1"])
    except ConfigError:
        return
    raise AssertionError("a bad flag in a deploy file would not be caught")
