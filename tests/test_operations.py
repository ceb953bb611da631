"""Operating the gateway: what /metrics counts after known traffic, readiness that follows the
store and the binds, and several API workers summed in one scrape."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import time

import httpx
import psutil
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from smsgw.connectors.smpp.simulator import SmscSimulator
from smsgw.dispatch.runtime import DeliveryPlan, run_delivery

from .dispatch.conftest import number
from .faults import _PostgresSession
from .helpers import DEFAULT_KEY, LiveServer, Operator, bulk, entry, free_port, make_settings, wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url + "/metrics", timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def delivered(operator: Operator) -> int:
    return operator.sql("SELECT count(*) FROM messages WHERE state = 3")[0][0]


async def test_a_scrape_after_known_traffic_shows_exact_counts(database_url):
    settings = make_settings(database_url)
    operator = Operator(settings)
    operator.partner("p1", credits=1000_00, shortcode="SC1")
    plan = DeliveryPlan.from_urls([], settings)
    with LiveServer(settings, delivery=lambda store: run_delivery(store, settings, plan)) as server:
        await wait_for(lambda: httpx.get(server.url + "/health/ready").status_code == 200, timeout=30)
        before = scrape(server.url)
        async with httpx.AsyncClient(timeout=30) as client:
            sent = await client.post(
                server.url + "/api/services/sendbulk", json=bulk(*[entry(number(i)) for i in range(3)], entry("12"), entry(number(3), "x" * 2000))
            )
            assert [r["response-code"] for r in sent.json()["responses"]] == [200, 200, 200, 1003, 1009]
            refused = await client.post(server.url + "/api/services/sendbulk", json=bulk(entry(key="wrong-key-0123456789")))
            assert refused.json()["response-code"] == 1006
            sms = await client.post(
                server.url + "/api/services/sendsms",
                json={"partnerID": "p1", "apikey": DEFAULT_KEY, "shortcode": "SC1", "message": "hi", "mobile": number(4)},
            )
            assert sms.json()["responses"][0]["response-code"] == 200
        await wait_for(lambda: delivered(operator) == 4, timeout=60)
        # The receipts are committed before the message is final; the counters follow at once.
        await wait_for(
            lambda: delta(before, scrape(server.url), "smsgw_receipts_total", smsc="simulator", state="DeliveredToTerminal", match="matched") == 4,
            timeout=10,
        )
        after = scrape(server.url)

    assert delta(before, after, "smsgw_messages_answered_total", endpoint="sendbulk", code="200") == 3
    assert delta(before, after, "smsgw_messages_answered_total", endpoint="sendbulk", code="1003") == 1
    assert delta(before, after, "smsgw_messages_answered_total", endpoint="sendbulk", code="1009") == 1
    assert delta(before, after, "smsgw_messages_answered_total", endpoint="sendsms", code="200") == 1
    assert delta(before, after, "smsgw_requests_refused_total", endpoint="sendbulk", code="1006") == 1
    assert delta(before, after, "smsgw_http_requests_total", endpoint="sendbulk", status="200") == 2
    assert delta(before, after, "smsgw_http_request_duration_seconds_count", endpoint="sendbulk") == 2
    assert delta(before, after, "smsgw_units_charged_total", partner="p1") == 4
    assert delta(before, after, "smsgw_submit_sm_total", smsc="simulator", command_status="0x00000000") == 4
    assert delta(before, after, "smsgw_accept_to_submit_seconds_count", smsc="simulator") == 4
    assert delta(before, after, "smsgw_submit_to_final_seconds_count") == 4
    assert delta(before, after, "smsgw_receipts_total", smsc="simulator", state="DeliveredToTerminal", match="unmatched") == 0
    # Read from the store at scrape time: nothing left in the queue, the bind held and up.
    assert value(after, "smsgw_queue_messages", state="Scheduled", priority="bulk") == 0
    assert value(after, "smsgw_queue_messages", state="SentToNetwork", priority="bulk") == 0
    assert value(after, "smsgw_smsc_bound", smsc="simulator") == 1
    assert value(after, "smsgw_smsc_bind_leased", smsc="simulator") == 1
    assert value(after, "smsgw_store_up") == 1


async def test_queue_depth_counts_what_waits_by_state_and_priority(database_url):
    settings = make_settings(database_url)
    operator = Operator(settings)
    operator.partner("p1", credits=1000_00, shortcode="SC1")
    later = int(time.time()) + 3600
    with LiveServer(settings) as server:  # API only: nothing is delivered
        async with httpx.AsyncClient(timeout=30) as client:
            await client.post(server.url + "/api/services/sendbulk", json=bulk(*[entry(number(i), timeToSend=later) for i in range(3)]))
            await client.post(
                server.url + "/api/services/sendotp",
                json={"partnerID": "p1", "apikey": DEFAULT_KEY, "shortcode": "SC1", "message": "1234", "mobile": number(9)},
            )
        samples = scrape(server.url)
    assert value(samples, "smsgw_queue_messages", state="Scheduled", priority="bulk") == 3
    assert value(samples, "smsgw_queue_messages", state="Scheduled", priority="otp") == 1
    assert ("smsgw_smsc_bound", frozenset()) not in samples  # an API-only process binds nothing


def test_metrics_token_guards_the_scrape(database_url):
    settings = make_settings(database_url, SMSGW_METRICS_TOKEN="scrape-secret")
    with LiveServer(settings) as server:
        assert httpx.get(server.url + "/metrics").status_code == 401
        assert httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200


def ready(url: str) -> httpx.Response:
    return httpx.get(url + "/health/ready", timeout=30)


def set_schema_revision(settings, revision: str) -> None:
    """Straight to the database: the gateway's own store would migrate an embedded one."""
    statement = f"UPDATE alembic_version SET version_num = '{revision}'"
    if settings.database_url.is_sqlite:
        with contextlib.closing(sqlite3.connect(settings.database_url.sqlite_path)) as conn, conn:
            conn.execute(statement)
        return
    session = _PostgresSession(settings.database_url.raw)
    try:
        session.execute(statement)
    finally:
        session.close()


def test_readiness_needs_the_current_schema(database_url):
    settings = make_settings(database_url)
    operator = Operator(settings)
    operator.partner("p1")  # brings the store to the current schema
    head = operator.sql("SELECT version_num FROM alembic_version")[0][0]
    with LiveServer(settings) as server:
        assert ready(server.url).status_code == 200
        set_schema_revision(settings, "0001")
        answer = ready(server.url)
        assert answer.status_code == 503 and "smsgw migrate" in answer.json()["problems"][0]
        assert httpx.get(server.url + "/health/live").json() == {"status": "live"}
        set_schema_revision(settings, head)
        assert ready(server.url).json() == {"status": "ready"}


async def test_readiness_turns_false_when_the_store_goes_away_and_true_when_it_is_back(postgres_cluster, postgres_url):
    settings = make_settings(postgres_url, SMSGW_LOCK_TIMEOUT_MS="1000")
    name = postgres_url.rsplit("/", 1)[1]
    admin = _PostgresSession(postgres_cluster.url)
    try:
        with LiveServer(settings) as server:
            assert ready(server.url).status_code == 200
            admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
            admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            await wait_for(lambda: ready(server.url).status_code == 503, timeout=30, interval=0.2)
            assert httpx.get(server.url + "/health/live").status_code == 200
            assert value(scrape(server.url), "smsgw_store_up") == 0  # the scrape still answers
            admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
            await wait_for(lambda: ready(server.url).status_code == 200, timeout=30, interval=0.2)
    finally:
        admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
        admin.close()


async def test_a_dispatching_process_is_ready_once_a_bind_is_up(tmp_path):
    settings = make_settings(f"sqlite:///{tmp_path / 'smsgw.db'}")
    Operator(settings).partner("p1")  # brings the store to the current schema
    port = free_port()
    plan = DeliveryPlan.from_urls([f"smpp://smsgw:secret@127.0.0.1:{port}?name=carrier"], settings)
    with LiveServer(settings, routed_networks=plan.routed_networks(settings), delivery=lambda store: run_delivery(store, settings, plan)) as server:
        answer = ready(server.url)
        assert answer.status_code == 503 and answer.json()["problems"] == ["no SMSC bound"]
        assert value(scrape(server.url), "smsgw_route_state", route="carrier", state="down") == 1
        simulator = SmscSimulator(system_id="smsgw", password="secret")
        await simulator.start("127.0.0.1", port)
        try:
            await wait_for(lambda: ready(server.url).status_code == 200, timeout=60, interval=0.2)
            assert value(scrape(server.url), "smsgw_smsc_bound", smsc="carrier") == 1
            scraped = scrape(server.url)
            assert [value(scraped, "smsgw_route_state", route="carrier", state=s) for s in ("up", "down", "probing")] == [1, 0, 0]
        finally:
            await simulator.stop()


def worker_counts(serve: psutil.Process) -> dict[int, float]:
    """Messages answered as each API worker wrote them in the multiprocess directory."""
    directory = serve.environ().get("PROMETHEUS_MULTIPROC_DIR")
    if directory is None:
        workers = [child for child in serve.children(recursive=True) if "PROMETHEUS_MULTIPROC_DIR" in child.environ()]
        directory = workers[0].environ()["PROMETHEUS_MULTIPROC_DIR"]
    counts: dict[int, float] = {}
    for file in os.listdir(directory):
        if file.startswith("counter_"):
            pid = int(file.split("_")[1].split(".")[0])
            values = MmapedDict.read_all_values_from_file(os.path.join(directory, file))
            counts[pid] = sum(v for key, v, *_ in values if "smsgw_messages_answered" in key)
    return counts


async def test_api_workers_are_summed_in_one_scrape(postgres_url):
    operator = Operator(make_settings(postgres_url))
    operator.partner("p1", credits=1000_00, shortcode="SC1")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsgw", "serve", "--role", "api", "--workers", "2", "--port", str(port), "--log-level", "warning",
        env=dict(os.environ, SMSGW_DATABASE_URL=postgres_url), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_for(lambda: _status(url + "/health/ready") == 200, timeout=60, interval=0.2)
        serve = psutil.Process(process.pid)
        sent = 0

        async def one(i: int) -> None:
            async with httpx.AsyncClient(timeout=30) as client:  # a connection each: the kernel spreads them
                answer = await client.post(url + "/api/services/sendbulk", json=bulk(entry(number(i))))
                assert answer.json()["responses"][0]["response-code"] == 200

        # Until both workers have answered some (bounded: at most 400 requests).
        while sent < 400:
            await asyncio.gather(*(one(sent + i) for i in range(20)))
            sent += 20
            counts = worker_counts(serve)
            if len([c for c in counts.values() if c > 0]) >= 2:
                break
        counts = worker_counts(serve)
        assert len([c for c in counts.values() if c > 0]) == 2, counts
        for _ in range(4):  # whichever worker answers the scrape, it sums both
            assert value(scrape(url), "smsgw_messages_answered_total", endpoint="sendbulk", code="200") == sent
        assert max(counts.values()) < sent
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def test_a_dispatcher_process_serves_its_own_counts(postgres_url):
    settings = make_settings(postgres_url)
    operator = Operator(settings)
    operator.partner("p1", credits=1000_00, shortcode="SC1")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsgw", "serve", "--role", "dispatcher", "--port", str(port), "--log-level", "warning",
        env=dict(os.environ, SMSGW_DATABASE_URL=postgres_url), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_for(lambda: _status(url + "/health/ready") == 200, timeout=60, interval=0.2)  # ready: its simulated SMSC is bound
        before = scrape(url)
        with LiveServer(settings) as api:  # an API process of its own: the dispatcher sends what it accepts
            sent = httpx.post(api.url + "/api/services/sendbulk", json=bulk(*[entry(number(i)) for i in range(5)]), timeout=30).json()
        assert [r["response-code"] for r in sent["responses"]] == [200] * 5
        await wait_for(lambda: delta(before, scrape(url), "smsgw_submit_sm_total", smsc="simulator", command_status="0x00000000") == 5, timeout=60)
        await wait_for(
            lambda: delta(before, scrape(url), "smsgw_receipts_total", smsc="simulator", state="DeliveredToTerminal", match="matched") == 5,
            timeout=30,
        )
        assert value(scrape(url), "smsgw_smsc_bound", smsc="simulator") == 1
        assert httpx.get(url + "/api/services/getbalance", timeout=5).status_code == 404  # operations only: no partner API here
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_the_operations_docs_and_dashboard_name_only_metrics_that_exist(tmp_path):
    import json
    import re
    from pathlib import Path

    from prometheus_client.metrics import MetricWrapperBase

    from smsgw import metrics

    docs = Path(__file__).parent.parent / "docs"
    settings = make_settings(f"sqlite:///{tmp_path / 'smsgw.db'}")
    Operator(settings).partner("p1")
    plan = DeliveryPlan.from_urls([], settings)
    with LiveServer(settings, delivery=lambda store: run_delivery(store, settings, plan)) as server:
        scraped = {name for name, _ in scrape(server.url)}
    counted = {m._name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    known = scraped | counted
    suffixes = ("_total", "_bucket", "_count", "_sum")
    named = set(re.findall(r"smsgw_[a-z_]+", (docs / "operations.md").read_text()))
    named |= set(re.findall(r"smsgw_[a-z_]+", json.dumps(json.loads((docs / "grafana-dashboard.json").read_text()))))
    unknown = {name for name in named if name not in known and not any(name.endswith(s) and name[: -len(s)] in known for s in suffixes)}
    assert not unknown


def test_json_logs_are_one_object_per_line_and_hold_no_key_or_text(tmp_path):
    import json
    import subprocess

    from .helpers import smsgw_command, wait_until_healthy

    port = free_port()
    env = dict(os.environ, SMSGW_DATABASE_URL=f"sqlite:///{tmp_path / 'smsgw.db'}", SMSGW_LOG_FORMAT="json")
    process = subprocess.Popen(
        smsgw_command() + ["serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process)
        body = bulk(entry(number(1), "secret text of the partner", partner="demo", key="wrong-key-0123456789", shortcode="SMSGW"))
        httpx.post(f"http://127.0.0.1:{port}/api/services/sendbulk", json=body, timeout=30)
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
    key = next(line.split()[1] for line in stdout.splitlines() if line.strip().startswith("apikey:"))
    lines = stderr.splitlines()
    assert all(line.startswith("{") and line.endswith("}") for line in lines), [line for line in lines if not line.startswith("{")][:3]
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"uvicorn.error", "smsgw.dispatch.dispatcher"} <= {event["logger"] for event in events}
    assert key not in stderr and "wrong-key-0123456789" not in stderr and "secret text" not in stderr
