"""The deployment files, checked statically (Docker and Helm do not run on the development
machine): they parse, their config is a valid modelmix config, and their probes, ports,
arguments and environment match what ``modelmix serve`` offers.

The Helm templates are rendered by ``render`` below, which knows only the subset of Helm's
template language the chart uses (value look-ups, ``toYaml ... | nindent N``, ``{{-``); any
other construct fails the test, so the chart stays within what is checked here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from modelmix.cli import serve
from modelmix.config import Config, parse_config
from modelmix.gateway import Gateway
from modelmix.server.app import create_app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "modelmix"
RELEASE = "mm"
_EXPR = re.compile(r"(\s*)\{\{(-?)\s*(.*?)\s*\}\}")


def _lookup(path: str, values: dict[str, Any]) -> Any:
    root, *parts = path.lstrip(".").split(".")
    if root == "Release" and parts == ["Name"]:
        return RELEASE
    assert root == "Values", f"unsupported template reference {path}"
    node: Any = values
    for part in parts:
        node = node[part]
    return node


def render(template: str, values: dict[str, Any]) -> str:
    def one(m: re.Match[str]) -> str:
        space, trim, expr = m.groups()
        space = "" if trim else space
        nindent = re.fullmatch(r"toYaml (\S+) \| nindent (\d+)", expr)
        if nindent:
            text = yaml.safe_dump(_lookup(nindent[1], values), sort_keys=False).rstrip("\n")
            pad = " " * int(nindent[2])
            return space + "\n" + "\n".join(pad + line for line in text.splitlines())
        assert re.fullmatch(r"\.[A-Za-z.]+", expr), f"unsupported template expression {expr}"
        return space + str(_lookup(expr, values))

    return _EXPR.sub(one, template)


def _routes() -> set[str]:
    app = create_app(Gateway(parse_config({}), ledger=False))
    return {r.path for r in app.rest.routes}  # type: ignore[attr-defined]


def _serve_options() -> set[str]:
    return {opt for p in serve.params for opt in p.opts}


def _check_args(args: list[str], config: Config) -> None:
    assert args[:2] == ["modelmix", "serve"]
    flags = [a for a in args[2:] if a.startswith("--")]
    assert set(flags) <= _serve_options()
    assert args[args.index("--port") + 1] == str(config.server.port)
    assert args[args.index("--config") + 1] == "/etc/modelmix/modelmix.yaml"


def _secrets(config: Config) -> set[str]:
    names = {m.api_key_env for m in config.models if m.api_key_env}
    assert config.server.admin_key_env
    return names | {config.server.admin_key_env}


def test_helm_chart_renders_to_matching_manifests() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "modelmix"
    docs = {
        name: yaml.safe_load(render((CHART / "templates" / name).read_text(), values))
        for name in ("deployment.yaml", "service.yaml", "configmap.yaml")
    }
    config = parse_config(yaml.safe_load(docs["configmap.yaml"]["data"]["modelmix.yaml"]))
    assert config.state.redis_url and config.cache.enabled
    deployment = docs["deployment.yaml"]
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    _check_args(container["args"], config)
    (port,) = container["ports"]
    assert port == {"name": "http", "containerPort": config.server.port}
    routes = _routes()
    ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert ready == {"path": "/ready", "port": "http"} and ready["path"] in routes
    assert live == {"path": "/health", "port": "http"} and live["path"] in routes
    # graceful shutdown: preStop pause + the gateway's own deadline fit in the grace period
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pause + config.server.shutdown_deadline < pod["terminationGracePeriodSeconds"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/etc/modelmix"] == "config"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == docs["configmap.yaml"]["metadata"]["name"]
    assert container["envFrom"][0]["secretRef"]["name"] == values["secretName"]
    service = docs["service.yaml"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_compose_file_runs_two_replicas_behind_a_load_balancer() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"gateway1", "gateway2", "redis", "postgres", "lb"} <= set(services)
    config = parse_config(yaml.safe_load((DEPLOY / "modelmix.yaml").read_text()))
    assert config.state.redis_url == "redis://redis:6379/0"  # the compose service
    assert config.ledger.url == "postgresql://modelmix@postgres:5432/modelmix"  # the service
    nginx = (DEPLOY / "nginx.conf").read_text()
    for name in ("gateway1", "gateway2"):
        gw = services[name]
        assert "./modelmix.yaml:/etc/modelmix/modelmix.yaml:ro" in gw["volumes"]
        assert _secrets(config) | {"PGPASSWORD"} <= set(gw["environment"])
        assert set(gw["depends_on"]) == {"redis", "postgres"}
        assert "/ready" in " ".join(gw["healthcheck"]["test"])
        assert int(gw["stop_grace_period"].rstrip("s")) > config.server.shutdown_deadline
        assert f"server {name}:{config.server.port}" in nginx
    assert "noeviction" in services["redis"]["command"]  # counters must never be evicted
    assert services["postgres"]["image"] == "postgres:15"


def test_dockerfile_serves_what_the_probes_ask() -> None:
    text = (ROOT / "Dockerfile").read_text()
    config = parse_config(yaml.safe_load((DEPLOY / "modelmix.yaml").read_text()))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M)[1])  # type: ignore[index]
    _check_args(cmd, config)
    assert re.search(rf"^EXPOSE {config.server.port}$", text, re.M)
    assert "/health" in re.search(r"^  CMD (.*)$", text, re.M)[1]  # type: ignore[index]
    assert "STOPSIGNAL SIGTERM" in text
