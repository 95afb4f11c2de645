"""The Grafana dashboard and Prometheus rules in deploy/ parse, and every metric they
name is one ``/metrics`` exposes (or that another component documents)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from tenure.store import tables as t

from .test_observability import running

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SUFFIXES = ("_bucket", "_count", "_sum", "_created")
NAME = re.compile(r"\btenure_[a-z0-9_]+\b")


def _expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("expr",) and isinstance(v, str)]
        return found + [e for v in node.values() for e in _expressions(v)]
    if isinstance(node, list):
        return [e for v in node for e in _expressions(v)]
    return []


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def _referenced(documents: list[Any]) -> set[str]:
    return {_base(n) for d in documents for e in _expressions(d) for n in NAME.findall(e)}


def _exposed(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(_base(line.split("{")[0].split()[0]))
    return {n.removesuffix("_total") for n in names} | names


def test_deploy_files_parse_and_name_only_exposed_metrics(tmp_path: Path) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "tenure-dashboard.json").read_text())
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert dashboard["panels"]
    assert scrape["scrape_configs"][0]["metrics_path"] == "/metrics"
    assert all("alert" in r and "expr" in r for g in alerts["groups"] for r in g["rules"])
    with running(tmp_path) as app:
        drill = {
            "account": "default",
            "at": "2026-11-29T08:00:00Z",
            "site": "file:///x",
            "passed": True,
            "rto_seconds": 1.0,
            "rpo_events": 0,
            "rpo_seconds": 0.0,
            "restored_size": 0,
            "live_size": 0,
            "detail": "",
        }
        with app.runtime.store.engine.begin() as conn:
            conn.execute(sa.insert(t.drills).values(**drill))
        text = app.client.get("/metrics").text
    exposed = _exposed(text)
    missing = {n for n in _referenced([dashboard, alerts]) if n not in exposed}
    assert not missing, f"named in deploy/ but not exposed by /metrics: {sorted(missing)}"
