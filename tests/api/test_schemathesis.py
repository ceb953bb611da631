"""Schemathesis over the gateway's own OpenAPI document, against a real gateway on loopback:
generated valid and invalid requests for every operation, and not one server error.

The document is the one the server serves, with the credential fields pinned to a real
partner (partnerID, apikey, shortcode), so that generated requests get past authentication
and reach the sending and reporting code; the admin operations get the operator's token.
Bounded: a fixed seed, a few examples per operation, one worker.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..helpers import DEFAULT_KEY, LiveServer, Operator, make_settings

ADMIN_TOKEN = "operator-token-for-schemathesis"
PINNED = {"partnerID": "p1", "apikey": DEFAULT_KEY, "shortcode": "SC1"}
# Examples of the other fields, so that the examples phase sends requests that are accepted.
EXAMPLES = {"mobile": "0712345678", "message": "Hello from schemathesis"}
MAX_EXAMPLES = 5
SEED = 20261201


def pin_credentials(node: Any) -> None:
    """Every schema of a credential field (body property or query parameter) becomes the
    test partner's value."""
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            for name, value in PINNED.items():
                if name in properties:
                    properties[name] = {"type": "string", "enum": [value]}
            for name, value in EXAMPLES.items():
                if isinstance(properties.get(name), dict):
                    properties[name]["examples"] = [value]
        if node.get("in") == "query" and node.get("name") in PINNED:
            node["schema"] = {"type": "string", "enum": [PINNED[node["name"]]]}
        if node.get("in") == "query" and node.get("name") in EXAMPLES:
            node["schema"]["examples"] = [EXAMPLES[node["name"]]]
        for child in node.values():
            pin_credentials(child)
    elif isinstance(node, list):
        for child in node:
            pin_credentials(child)


def schemathesis_command() -> list[str]:
    found = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if found is None:
        pytest.fail("schemathesis is a test dependency (pip install -e '.[test]') but its `st` command is missing")
    return [found]


def test_no_server_error_for_any_generated_request(database_url, tmp_path):
    settings = make_settings(database_url, SMSGW_ADMIN_TOKEN=ADMIN_TOKEN)
    Operator(settings).partner("p1", credits=10**9, shortcode="SC1")
    with LiveServer(settings) as server:
        document = httpx.get(server.url + "/openapi.json", timeout=30).json()
        pin_credentials(document)
        schema = tmp_path / "openapi.json"
        schema.write_text(json.dumps(document))
        report = tmp_path / "report.json"
        run = subprocess.run(
            schemathesis_command()
            + [
                "run",
                str(schema),
                "--url",
                server.url,
                "--checks",
                "not_a_server_error",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                str(SEED),
                "--workers",
                "1",
                "--phases",
                "examples,coverage,fuzzing",
                "--request-timeout",
                "20",
                "--header",
                f"Authorization: Bearer {ADMIN_TOKEN}",
                "--report",
                "json",
                "--report-json-path",
                str(report),
                "--no-color",
            ],
            capture_output=True,
            check=False,
            text=True,
            timeout=240,
            cwd=tmp_path,
        )
    assert report.exists(), run.stdout[-4000:] + run.stderr[-2000:]
    summary = json.loads(report.read_text())
    failures = run.stdout[run.stdout.find("FAILURES") :][:4000] if "FAILURES" in run.stdout else run.stdout[-4000:]
    assert summary["failures"] == [] and summary["test_cases"]["with_failures"] == 0, failures
    assert summary["errors"] == [], run.stdout[-4000:]
    # It really ran: every operation of the document, many cases, and sends got past
    # authentication to the store.
    assert summary["operations"]["tested"] == summary["operations"]["total"] == len(operations(document)) > 0
    assert summary["test_cases"]["generated"] > 10 * summary["operations"]["total"]
    assert Operator(settings).sql("SELECT count(*) FROM messages WHERE partner_id = 'p1'")[0][0] > 0
    assert run.returncode == 0, run.stdout[-4000:]


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method, path) for path, item in document["paths"].items() for method in item]
