"""Schemathesis against a real server and its live ``/openapi.json``.

The issue's contract: every operation, fuzzed with an owner key, answers no 5xx
(``not_a_server_error``) and a response the schema documents: a documented status
code, a documented content type and headers, a body valid against the documented
schema (schemathesis' built-in conformance checks, none switched off).

How:

* This module runs its own server (fuzzing appends events; the session ``server``'s
  ledger size is asserted elsewhere), seeded like the others, then given the example
  catalog, two customers, licenses and spare API keys. Dictionaries bind their ids to the
  parameters that name objects, so about half the generated values are real objects
  rather than 404s. ``revoke`` is terminal, so it gets licenses of its own.
* Schemathesis runs once, through its CLI (``schemathesis run``), over every operation:
  the coverage phase (boundary values, positive and negative) and the fuzzing phase
  (``MAX_EXAMPLES`` cases per operation), ``continue-on-failure`` so that a 5xx is not
  hidden behind the first conformance failure of an operation. Generation is
  deterministic (derandomized) and uses no example database; requests go to 127.0.0.1
  only. (The CLI, not ``schemathesis.pytest.from_fixture``: the lazy pytest loader of
  schemathesis 4.32 reads ``Item._nodeid``, which pytest 9.2 no longer has.)
* The tests read the run's JSON and JUnit reports: one asserts that every operation of
  the live schema was tested and nothing skipped or errored, one that no response was a
  5xx, one that every response conformed. Failures come with their ``curl``.

Phases not run, and why: ``examples`` (the schema has no examples, so it would only
report skips) and ``stateful`` (the schema declares no links; it would not fit the
time budget either).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.api import apply_example_catalog
from support.cli import subprocess_env
from support.server import REQUEST_TIMEOUT, Server, seeded_server

CATALOG = (Path(__file__).parents[2] / "examples" / "catalog.yaml").read_bytes()
MAX_EXAMPLES = int(os.environ.get("TENURE_FUZZ_EXAMPLES", "30"))
"""Fuzzed cases per operation, on top of the coverage phase's boundary cases: 30 keeps
the suite inside CI's 15 minutes with the operations routes; set TENURE_FUZZ_EXAMPLES
for a longer run."""
DICTIONARY_PROBABILITY = 0.5
"""How often a bound parameter takes a real object's id instead of a generated value."""
RUN_TIMEOUT = 240.0
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]
SERVER_ERROR_CODES = frozenset({"ST101", "ST102"})
"""Schemathesis failure codes of ``not_a_server_error`` (see ``st explain ST101``)."""


# ---------------------------------------------------------------- the server and its objects


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with seeded_server(tmp_path_factory, "schemathesis") as running:
        yield running


@dataclass(frozen=True)
class Objects:
    """Real objects on the fuzzed server, for the dictionaries."""

    customers: list[str]
    serials: list[str]
    revocable: list[str]
    license_keys: list[str]
    spare_key_ids: list[str]
    products: list[str]
    plans: list[str]
    entitlements: list[str]


def _ok(response: httpx.Response, *statuses: int) -> Any:
    assert response.status_code in statuses, f"{response.request.url}: {response.text}"
    return response.json()


@pytest.fixture(scope="module")
def objects(fuzz_server: Server) -> Objects:
    """Apply the example catalog, then make customers (a second one to transfer to),
    licenses and spare API keys."""
    with fuzz_server.client(fuzz_server.owner_key()) as api:
        apply_example_catalog(api)  # with a second admin's approval where it takes away
        customers = [
            _ok(api.post("/v1/customers", json=body), 201)["id"]
            for body in (
                {"name": "Fuzz Corp", "email": "ops@fuzz.example"},
                {"name": "Fuzz Transfer Target", "email": "it@target.example"},
            )
        ]
        customer = customers[0]

        def issue(plan: str, product: str) -> dict[str, Any]:
            body = {
                "product": product,
                "plan": plan,
                "customer": customer,
                "order_ref": f"fuzz-{uuid.uuid4().hex}",
            }
            issued: dict[str, Any] = _ok(api.post("/v1/licenses", json=body), 201)
            return issued

        issued = [
            issue("studio-pro", "studio"),
            issue("studio-lifetime", "studio"),
            issue("farm-burst", "render-farm"),
        ]
        revocable = [issue("studio-basic", "studio")["serial"] for _ in range(2)]
        serials = [license["serial"] for license in issued]
        # One suspended, so that reinstate has a real target from the start.
        _ok(api.post(f"/v1/licenses/{serials[1]}/suspend", json={"reason": "fuzz"}), 200)
        spare = [
            _ok(api.post("/v1/apikeys", json={"role": role, "name": f"fuzz {role}"}), 201)["id"]
            for role in ("auditor", "support", "agent")
        ]
        products = _ok(api.get("/v1/products"), 200)["products"]
    features = sorted({f"feature:{f}" for product in products for f in product["features"]})
    return Objects(
        customers=customers,
        serials=serials,
        revocable=revocable,
        license_keys=[license["key"] for license in issued],
        spare_key_ids=spare,
        products=sorted(product["code"] for product in products),
        plans=sorted({plan["code"] for product in products for plan in product["plans"]}),
        entitlements=[*features, "seats", "quota:api-calls", "module:analytics"],
    )


# ---------------------------------------------------------------- the schemathesis run


def schemathesis_config(server: Server, objects: Objects) -> dict[str, Any]:
    """The ``schemathesis.toml`` of the run, as a dict."""

    def bind(dictionary: str) -> dict[str, Any]:
        return {"dictionary": dictionary, "probability": DICTIONARY_PROBABILITY}

    return {
        "base-url": server.url,
        "headers": {"Authorization": f"Bearer {server.owner_key()}"},
        "workers": 1,
        "continue-on-failure": True,
        "request-timeout": REQUEST_TIMEOUT,
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        "phases": {
            "examples": {"enabled": False},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "dictionaries": {
            "customers": {"values": objects.customers},
            "serials": {"values": objects.serials},
            "revocable": {"values": objects.revocable},
            "licenses": {"values": objects.serials + objects.license_keys},
            "key_ids": {"values": objects.spare_key_ids},
            "products": {"values": objects.products},
            "plans": {"values": objects.plans},
            "entitlements": {"values": objects.entitlements},
            "statuses": {"values": ["active", "suspended", "revoked", "expired"]},
        },
        "parameters": {
            "path.customer": bind("customers"),
            "path.serial": bind("serials"),
            "path.key_id": bind("key_ids"),
            "query.customer": bind("customers"),
            "query.product": bind("products"),
            "query.status": bind("statuses"),
            "body.customer": bind("customers"),
            "body.product": bind("products"),
            "body.plan": bind("plans"),
            "body.license": bind("licenses"),
            "body.entitlement": bind("entitlements"),
            "body.checks[*].license": bind("licenses"),
            "body.checks[*].entitlement": bind("entitlements"),
        },
        "operations": [
            {
                "include-path": "/v1/licenses/{serial}/revoke",
                "parameters": {"path.serial": bind("revocable")},
            }
        ],
    }


def to_toml(config: dict[str, Any]) -> str:
    """``config`` as TOML: one ``key = value`` line per top-level key, inline values.

    JSON's string escapes (ASCII only) are TOML's basic-string escapes.
    """

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float | str):
            return json.dumps(item, ensure_ascii=True)
        if isinstance(item, list):
            return "[" + ", ".join(value(element) for element in item) + "]"
        if isinstance(item, dict):
            pairs = (f"{json.dumps(k)} = {value(v)}" for k, v in item.items())
            return "{ " + ", ".join(pairs) + " }"
        raise TypeError(f"no TOML for {item!r}")

    return "".join(f"{json.dumps(key)} = {value(item)}\n" for key, item in config.items())


def schemathesis_command() -> list[str]:
    beside = Path(sys.executable).with_name("schemathesis")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "schemathesis.cli"]


@dataclass(frozen=True)
class Failure:
    """One failing test case of the run."""

    operation: str
    case_id: str
    codes: list[str]
    text: str

    def describe(self) -> str:
        return f"{self.operation} ({', '.join(self.codes)})\n{self.text.strip()}"


@dataclass
class Run:
    """What ``schemathesis run`` did: its report, failures, errors and output."""

    summary: dict[str, Any]
    tested: set[str]
    failures: list[Failure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    output: str = ""
    output_path: Path | None = None

    def details(self, failures: list[Failure]) -> str:
        listed = "\n\n".join(f.describe() for f in sorted(failures, key=lambda f: f.operation))
        return f"{listed}\n\n(the whole schemathesis output: {self.output_path})"


CASE = re.compile(r"^\d+\. Test Case ID: (\S+)$", re.MULTILINE)
CODE = re.compile(r"^- (ST\d{3}) ", re.MULTILINE)


def read_junit(path: Path, run: Run) -> None:
    # The report schemathesis just wrote, not untrusted input.
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314
        operation = case.attrib["name"]
        run.tested.add(operation)
        for error in case.iter("error"):
            run.errors.append(f"{operation}: {error.attrib.get('message')}\n{error.text or ''}")
        for skipped in case.iter("skipped"):
            run.skipped.append(f"{operation}: {skipped.attrib.get('message')}")
        for failure in case.iter("failure"):
            text = failure.text or ""
            starts = [*CASE.finditer(text)]
            if not starts:  # not the layout this parser knows: keep it whole, never drop it
                codes = re.findall(r"ST\d{3}", failure.attrib.get("message", "")) or ["?"]
                run.failures.append(Failure(operation, "?", codes, text))
            for match, after in zip(starts, [*starts[1:], None], strict=True):
                block = text[match.start() : after.start() if after else len(text)]
                run.failures.append(Failure(operation, match[1], CODE.findall(block), block))


@pytest.fixture(scope="module")
def fuzz_run(
    fuzz_server: Server, objects: Objects, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    """Run schemathesis once over the live schema (in a scratch directory, so its
    caches stay out of the checkout)."""
    work = tmp_path_factory.mktemp("schemathesis-run")
    config = work / "schemathesis.toml"
    config.write_text(to_toml(schemathesis_config(fuzz_server, objects)), encoding="utf-8")
    junit, report = work / "junit.xml", work / "report.json"
    command = [
        *schemathesis_command(),
        "--no-color",
        "--config-file",
        str(config),
        "run",
        f"{fuzz_server.url}/openapi.json",
        "--report",
        "junit,json",
        "--report-junit-path",
        str(junit),
        "--report-json-path",
        str(report),
    ]
    try:
        done = subprocess.run(
            command,
            cwd=work,
            env=subprocess_env(NO_COLOR="1"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"schemathesis did not finish within {RUN_TIMEOUT} s:\n{exc.stdout!r}")
    output = f"{done.stdout}\n{done.stderr}"
    output_path = work / "output.txt"
    output_path.write_text(output, encoding="utf-8")
    if not report.exists() or not junit.exists():
        pytest.fail(f"schemathesis wrote no report (exit {done.returncode}):\n{output}")
    summary = json.loads(report.read_text(encoding="utf-8"))
    run = Run(summary, set(), output=output, output_path=output_path)
    read_junit(junit, run)
    if done.returncode != 0 and not run.failures:
        pytest.fail(f"schemathesis exited with {done.returncode} without failures:\n{output}")
    return run


def live_operations(server: Server) -> set[str]:
    with server.client() as client:
        paths = client.get("/openapi.json").raise_for_status().json()["paths"]
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {f"{m.upper()} {path}" for path, item in paths.items() for m in item if m in methods}


# ---------------------------------------------------------------- the verdicts


def test_every_operation_was_fuzzed(fuzz_server: Server, fuzz_run: Run) -> None:
    """Nothing skipped or errored: every operation of the live schema went through the
    coverage and fuzzing phases."""
    summary = fuzz_run.summary
    operations = summary["operations"]
    assert summary["complete"], summary["stop_reason"]
    assert summary["stop_reason"] == "completed"
    assert operations["skipped"] == 0, operations["skip_reasons"]
    assert operations["errored"] == 0, "\n\n".join(fuzz_run.errors) or fuzz_run.output
    assert operations["tested"] == operations["selected"] == operations["total"]
    assert summary["errors"] == [], summary["errors"]
    assert summary["test_cases"]["errored"] == 0
    assert summary["test_cases"]["generated"] >= operations["total"]
    for phase in ("coverage", "fuzzing"):
        assert summary["phases"][phase]["status"] in {"success", "failure"}, summary["phases"]
    assert fuzz_run.errors == []
    assert fuzz_run.skipped == []
    assert fuzz_run.tested == live_operations(fuzz_server)


def test_no_server_errors(fuzz_run: Run) -> None:
    """``not_a_server_error``: no response is a 5xx."""
    found = [f for f in fuzz_run.failures if SERVER_ERROR_CODES.intersection(f.codes)]
    if found:
        pytest.fail(
            f"{len(found)} server errors:\n\n{fuzz_run.details(found)}",
            pytrace=False,
        )


def test_responses_match_the_schema(fuzz_run: Run) -> None:
    """Documented status code, content type and headers; a body valid against the
    documented schema."""
    found = [f for f in fuzz_run.failures if set(f.codes) - SERVER_ERROR_CODES]
    undocumented: dict[str, set[str]] = defaultdict(set)
    for failure in found:
        if "ST103" in failure.codes:
            received = re.search(r"Received: (\d+)", failure.text)
            undocumented[failure.operation].add(received[1] if received else "?")
    table = "\n".join(
        f"  {operation}: {', '.join(sorted(statuses))}"
        for operation, statuses in sorted(undocumented.items())
    )
    if found:
        pytest.fail(
            f"{len(found)} schema mismatches.\nUndocumented statuses by operation:\n{table}\n\n"
            f"{fuzz_run.details(found)}",
            pytrace=False,
        )


def test_owner_key_survived_fuzzing(fuzz_server: Server, fuzz_run: Run) -> None:
    """The run worked as the owner throughout: its key was never revoked."""
    with fuzz_server.client(fuzz_server.owner_key()) as api:
        assert api.get("/v1/apikeys").status_code == 200
