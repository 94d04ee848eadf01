"""Schemathesis against the live OpenAPI schema of a real server process: no 5xx response.

The server runs without a worker (jobs stay queued: fuzzing must not start training). The event
stream route is left out: a queued job's stream stays open by design (it is covered by the API
and end-to-end tests).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.app.test_e2e import Server, start_server

ROOT = Path(__file__).resolve().parents[2]

# In the default run (~30 s): the issue asks for zero 5xx against the live schema in CI.


# Known ids are used for most generated values of these fields (the rest stay random).
CONFIG = """
[dictionaries.datasets]
values = ["{dataset}"]
[dictionaries.recommendations]
values = ["{rec}"]
[dictionaries.jobs]
values = ["{job}"]

[parameters]
"path.dataset_id" = {{ dictionary = "datasets", probability = 0.7 }}
"path.job_id" = {{ dictionary = "jobs", probability = 0.7 }}
"path.recommendation_id" = {{ dictionary = "recommendations", probability = 0.7 }}
"body.dataset_id" = {{ dictionary = "datasets", probability = 0.7 }}
"body.recommendation_id" = {{ dictionary = "recommendations", probability = 0.7 }}
"""


@pytest.fixture
def api_server(tmp_path: Path, meta_learner_artifact: Path) -> Iterator[Server]:
    yield from start_server(
        tmp_path / "data",
        {
            "AUTODISTILLER_META_LEARNER__ARTIFACT": str(meta_learner_artifact),
            "AUTODISTILLER_META_LEARNER__EMBEDDINGS": "off",
            "AUTODISTILLER_LIMITS__MAX_UPLOAD_BYTES": "200000",
        },
        worker=False,
    )


def test_no_server_errors_under_schemathesis(api_server: Server, tmp_path: Path) -> None:
    pytest.importorskip("schemathesis")
    cli = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    with api_server.client(timeout=120) as client:  # real ids, so generated requests reach the logic
        dataset = client.post("/datasets", data={"builtin": "rt_polarity_200"}).json()
        rec = client.post("/recommend", json={"dataset_id": dataset["id"], "k": 3}).json()
        job = client.post("/jobs", json={"dataset_id": dataset["id"], "kd_config": {}}).json()
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(dataset=dataset["id"], rec=rec["id"], job=job["id"]))
    result = subprocess.run(
        [
            cli,
            "--config-file",
            str(config),
            "run",
            f"{api_server.base_url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"X-API-Key: {api_server.key}",
            "--max-examples",
            "25",
            "--seed",
            "7",
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--exclude-path-regex",
            "/events$",
            "--request-timeout",
            "60",
            "--generation-database",
            "none",
            "--no-color",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path / "report"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, (
        output[-6000:] + "\n--- server log ---\n" + api_server.log.read_text()[-4000:]
    )
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts and int(counts[1]) >= 200 and counts[1] == counts[2], output[-3000:]
    assert httpx.get(f"{api_server.base_url}/health").json()["status"] == "ok"
