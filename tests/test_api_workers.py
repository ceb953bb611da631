"""`smsgw serve --workers N`: the process manager around the API workers."""

from __future__ import annotations

import os

from .helpers import free_port, start_serve

# Loaded by every Python process of the test's serve: only the API workers (the processes
# that inherit the metrics directory their parent sets up) start slowly, as on a loaded machine.
SLOW_WORKERS = """
import os, time
if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and os.environ.get("SLOW_WORKER_START_SECONDS"):
    time.sleep(float(os.environ["SLOW_WORKER_START_SECONDS"]))
"""


def test_api_workers_that_start_slowly_are_not_killed_over_and_over(tmp_path):
    """uvicorn's process manager kills a worker that does not answer its ping within 5 s
    (about 10 s at most while it starts), so a worker slower than that to start was replaced
    for ever and the gateway never answered."""
    (tmp_path / "sitecustomize.py").write_text(SLOW_WORKERS)
    path = os.pathsep.join([str(tmp_path), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
    env = {
        "PYTHONPATH": path,
        "SLOW_WORKER_START_SECONDS": "12",
        "SMSGW_WORKER_HEALTHCHECK_SECONDS": "60",
        "SMSGW_DATABASE_URL": f"sqlite:///{tmp_path / 'smsgw.db'}",
    }
    process = start_serve(env, free_port(), tmp_path, ["--role", "api", "--workers", "2"], healthy_within=120)
    try:
        assert process.poll() is None
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "died" not in output, output
