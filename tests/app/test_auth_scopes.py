"""Issue 18: authentication before parsing, key scopes, ownership, ``public_reads``, and the
migration that gives existing keys and rows their scope and owner."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from app.api.auth import is_public
from tests.app.conftest import Api

FAST = {"training": {"epochs": 1, "max_steps": 3, "batch_size": 8, "max_length": 32}}
SAMPLE_IDS = {
    "{dataset_id}": "x",
    "{job_id}": "x",
    "{sweep_id}": "x",
    "{recommendation_id}": "x",
    "{name}": "report.json",
}
PUBLIC = ("/health", "/metrics", "/docs", "/redoc", "/openapi.json")


def _csv(rows: int = 40) -> bytes:
    lines = ["text,label"] + [
        f"review {i} was {'good' if i % 2 else 'bad'} {i * 17},{i % 2}" for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def _operations(api: Api) -> list[tuple[str, str, dict[str, Any]]]:
    paths = api.get("/openapi.json").json()["paths"]
    return [(method.upper(), path, op) for path, ops in paths.items() for method, op in ops.items()]


def _url(path: str) -> str:
    for name, value in SAMPLE_IDS.items():
        path = path.replace(name, value)
    return path


def _job(api: Api, dataset_id: str, **extra: Any) -> Any:
    body = {"dataset_id": dataset_id, "kd_config": FAST, "student": {"num_layers": 1}, **extra}
    return api.post("/jobs", json=body)


def _sweep(api: Api, dataset_id: str) -> dict[str, Any]:
    body = {
        "dataset_ids": [dataset_id],
        "students": [{"num_layers": 2}],
        "budget": 1,
        "training": FAST["training"],
    }
    return api.post("/sweeps", json=body).json()


# ---- authentication before parsing ------------------------------------------------------------
def test_anonymous_requests_to_every_protected_route_are_401(api: Api) -> None:
    operations = _operations(api)
    protected = [(m, p) for m, p, _ in operations if not is_public(p)]
    assert ("GET", "/datasets") in protected and ("GET", "/jobs/{job_id}/artifacts/{name}") in protected
    assert ("GET", "/sweep-records") in protected and ("GET", "/meta-learner") in protected
    for method, path in protected:
        response = api.client.request(method, _url(path))
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        assert "WWW-Authenticate" in response.headers
    for path in PUBLIC:
        assert api.client.get(path).status_code == 200, path
    assert api.client.get("/nowhere").status_code == 401  # unknown routes are not revealed either


def test_anonymous_malformed_or_oversized_bodies_are_401_before_parsing(make_api: Any) -> None:
    api = make_api(limits={"max_upload_bytes": 2048})
    cases = [
        ("/jobs", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
        ("/recommend", {"json": {"k": "many", "unknown": 1}}),
        ("/datasets", {"json": {"builtin": "rt_polarity_200"}}),  # wrong media type: 415 with a key
        ("/sweeps", {"content": b"x" * (3 << 20), "headers": {"Content-Type": "application/json"}}),
    ]
    for path, kw in cases:
        anonymous = api.client.post(path, **kw)
        assert anonymous.status_code == 401, (path, anonymous.text)
        assert anonymous.json()["error"]["code"] == "unauthorized"
    # the same bodies with a key reach the parser (so the 401 above really came first)
    with_key = [api.post(path, **kw).status_code for path, kw in cases]
    assert with_key == [422, 422, 415, 413]


def test_openapi_documents_the_key_on_every_protected_route(api: Api) -> None:
    schema = api.get("/openapi.json").json()
    assert {"APIKeyHeader", "HTTPBearer"} <= set(schema["components"]["securitySchemes"])
    for method, path, op in _operations(api):
        schemes = {name for requirement in op.get("security", []) for name in requirement}
        if is_public(path):
            assert not schemes, (method, path)
        else:
            assert schemes == {"APIKeyHeader", "HTTPBearer"}, (method, path)
            assert "401" in op["responses"], (method, path)


# ---- scopes -----------------------------------------------------------------------------------
def test_a_read_key_reads_but_cannot_write_and_the_403_names_no_path(api: Api, tmp_path: Path) -> None:
    reader = api.as_new_key("read", "reader")
    assert reader.get("/datasets").status_code == 200
    assert reader.get("/meta-learner").status_code == 200
    for method, path, kw in (
        ("POST", "/datasets", {"data": {"builtin": "rt_polarity_200"}}),
        ("POST", "/jobs", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
        ("POST", "/recommend", {"json": {}}),
        ("POST", "/jobs/x/cancel", {}),
        ("DELETE", "/datasets/x", {}),
        ("POST", "/meta-learner/refit", {}),
    ):
        headers = {**reader.auth, **kw.pop("headers", {})}
        response = api.client.request(method, path, headers=headers, **kw)
        assert response.status_code == 403, (method, path, response.text)
        error = response.json()["error"]
        assert error["code"] == "forbidden"
        assert "read scope" in error["message"] and "write scope" in error["message"]
        assert str(tmp_path) not in response.text and "/" not in error["message"]


def test_refitting_the_shared_meta_learner_needs_an_admin_key(api: Api) -> None:
    writer = api.as_new_key("write")
    response = writer.post("/meta-learner/refit", json={"evaluate": False})
    assert response.status_code == 403
    assert "write scope" in response.json()["error"]["message"]
    assert "admin scope" in response.json()["error"]["message"]
    admin = api.post("/meta-learner/refit", json={"evaluate": False})  # past the scope check:
    assert admin.json()["error"]["code"] == "not_enough_records"  # no sweep records to fit on yet


# ---- ownership --------------------------------------------------------------------------------
def test_another_keys_dataset_recommendation_and_job_are_not_found(api: Api) -> None:
    x, y = api.as_new_key("write", "x"), api.as_new_key("write", "y")
    upload = x.post("/datasets", files={"file": ("mine.csv", _csv(), "text/csv")})
    assert upload.status_code == 201, upload.text
    mine = upload.json()["id"]
    builtin = x.builtin_dataset()["id"]
    rec = x.post("/recommend", json={"dataset_id": mine, "k": 2}).json()
    job = _job(x, mine, idempotency_key="x-first").json()

    # x sees its own; y sees only the built-in dataset x registered
    assert {d["id"] for d in x.get("/datasets").json()["data"]} == {mine, builtin}
    assert {d["id"] for d in y.get("/datasets").json()["data"]} == {builtin}
    assert y.get(f"/datasets/{builtin}").status_code == 200
    assert x.get(f"/recommendations/{rec['id']}").status_code == 200
    assert x.get("/jobs").json()["count"] == 1 and y.get("/jobs").json()["count"] == 0
    for url in (
        f"/datasets/{mine}",
        f"/recommendations/{rec['id']}",
        f"/jobs/{job['id']}",
        f"/jobs/{job['id']}/events?timeout_s=1",
        f"/jobs/{job['id']}/logs",
        f"/jobs/{job['id']}/artifacts",
        f"/jobs/{job['id']}/artifacts/report.json",
    ):
        response = y.get(url)
        assert response.status_code == 404, (url, response.text)
        assert response.json()["error"]["code"] == "not_found"
    # nor can y use or change them
    assert y.post(f"/jobs/{job['id']}/cancel").status_code == 404
    assert y.delete(f"/datasets/{mine}").status_code == 404
    assert y.post("/recommend", json={"dataset_id": mine, "k": 2}).status_code == 404
    assert _job(y, mine).status_code == 404
    assert _job(y, builtin, recommendation_id=rec["id"], rank=1, kd_config=None).status_code == 404
    sweep = {
        "dataset_ids": [mine],
        "students": [{"num_layers": 1}],
        "budget": 1,
        "training": FAST["training"],
    }
    assert y.post("/sweeps", json=sweep).status_code == 404
    # a built-in dataset is readable and usable by every key, deletable only by its owner
    assert _job(y, builtin).status_code == 202
    forbidden = y.delete(f"/datasets/{builtin}")
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    # an idempotency key another key used is a conflict that says nothing about that job
    clash = _job(y, builtin, idempotency_key="x-first")
    assert clash.status_code == 409 and job["id"] not in clash.text
    # x's job was never touched; the admin key sees and can change everything
    assert x.get(f"/jobs/{job['id']}").json()["status"] == "queued"
    assert api.get(f"/jobs/{job['id']}").status_code == 200
    assert api.get(f"/datasets/{mine}").status_code == 200
    assert api.get(f"/recommendations/{rec['id']}").status_code == 200
    assert api.get("/jobs").json()["count"] == 2
    assert api.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"


def test_same_question_from_two_keys_gets_two_recommendations(api: Api) -> None:
    x, y = api.as_new_key("write", "x"), api.as_new_key("write", "y")
    body = {"meta_features": {"n_train": 170.0, "is_regression": 0.0, "n_labels": 2.0}, "k": 2}
    first, again = (x.post("/recommend", json=body).json() for _ in range(2))
    other = y.post("/recommend", json=body).json()
    assert first["id"] == again["id"]  # one key: the stored answer is reused
    assert other["id"] != first["id"] and other["items"] == first["items"]
    assert y.get(f"/recommendations/{other['id']}").status_code == 200
    assert y.get(f"/recommendations/{first['id']}").status_code == 404


def test_artifacts_and_sweep_records_stay_with_their_key(api: Api) -> None:
    x, y = api.as_new_key("write", "x"), api.as_new_key("write", "y")
    dataset = x.builtin_dataset()["id"]
    job = _job(x, dataset).json()
    sweep = _sweep(x, dataset)
    api.drain()
    assert x.get(f"/jobs/{job['id']}").json()["status"] == "succeeded"
    assert x.get(f"/jobs/{job['id']}/artifacts/report.json").status_code == 200
    assert y.get(f"/jobs/{job['id']}/artifacts/report.json").status_code == 404
    assert y.get(f"/jobs/{job['id']}/artifacts/student.tar.gz").status_code == 404

    assert x.get(f"/sweeps/{sweep['id']}").json()["done"]
    assert x.get(f"/sweeps/{sweep['id']}/records").json()["count"] == 1
    for url in (f"/sweeps/{sweep['id']}", f"/sweeps/{sweep['id']}/records"):
        assert y.get(url).status_code == 404, url
    assert x.get("/sweeps").json()["count"] == 1 and y.get("/sweeps").json()["count"] == 0
    # the admin key sees x's sweep, its records and the job's artifacts
    assert api.get(f"/sweeps/{sweep['id']}/records").json()["count"] == 1
    assert api.get("/sweeps").json()["count"] == 1
    assert api.get(f"/jobs/{job['id']}/artifacts/report.json").status_code == 200

    # the records of x's two jobs: x and the admin read them, y does not ...
    own = x.get("/sweep-records", params={"source": "own"}).json()
    assert own["count"] == 2 and {r["job_id"] for r in own["data"]} >= {job["id"]}
    assert y.get("/sweep-records", params={"source": "own"}).json()["count"] == 0
    assert y.get("/sweep-records", params={"job_id": job["id"]}).json()["count"] == 0
    assert api.get("/sweep-records", params={"source": "own"}).json()["count"] == 2
    # ... but they feed the meta-learner every key shares
    assert y.get("/meta-learner").json()["records"] == api.get("/meta-learner").json()["records"]
    assert api.services.store.sweep_records.count(source="own") == 2

    # a sweep by y does not link (and so show) x's jobs or records: it queues its own
    mine = _sweep(y, dataset)
    assert mine["job_ids"] and not set(mine["job_ids"]) & set(sweep["job_ids"])
    assert mine["counts"] == {**mine["counts"], "queued": 1}


def test_public_reads_open_gets_only_and_say_so_loudly(
    make_api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app"):
        api = make_api(public_reads=True)
    assert "PUBLIC READS" in caplog.text
    x, y = api.as_new_key("write", "x"), api.as_new_key("write", "y")
    mine = x.post("/datasets", files={"file": ("mine.csv", _csv(), "text/csv")}).json()["id"]
    job = _job(x, mine).json()
    anonymous = api.client
    assert anonymous.get("/health").json()["public_reads"] is True
    assert mine in {d["id"] for d in anonymous.get("/datasets").json()["data"]}
    assert anonymous.get(f"/jobs/{job['id']}").status_code == 200
    assert anonymous.get(f"/jobs/{job['id']}/logs").status_code == 200
    assert y.get(f"/jobs/{job['id']}").status_code == 200  # reads are open to every key too
    assert anonymous.get("/jobs", headers={"X-API-Key": "adk_bad_key"}).status_code == 401
    # writes still need a key, and stay confined to the key's own objects
    assert anonymous.post(f"/jobs/{job['id']}/cancel").status_code == 401
    assert anonymous.post("/datasets", data={"builtin": "rt_polarity_200"}).status_code == 401
    assert y.post(f"/jobs/{job['id']}/cancel").status_code == 404
    assert _job(y, mine).status_code == 404
    assert x.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"


def test_with_auth_off_everything_is_shared(make_api: Any) -> None:
    api = make_api(auth=False)
    anonymous = api.client
    dataset = anonymous.post("/datasets", files={"file": ("d.csv", _csv(), "text/csv")}).json()["id"]
    job = anonymous.post("/jobs", json={"dataset_id": dataset, "kd_config": FAST}).json()
    assert anonymous.get(f"/jobs/{job['id']}").status_code == 200
    assert anonymous.get("/jobs").json()["count"] == 1
    assert anonymous.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    assert (
        anonymous.get("/health").json() | {"auth": False, "public_reads": False}
        == anonymous.get("/health").json()
    )


# ---- keys -------------------------------------------------------------------------------------
def test_keys_cli_scopes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from app.commands.service import cli

    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    assert runner.invoke(cli, ["keys", "create", "writer", *data]).exit_code == 0
    assert runner.invoke(cli, ["keys", "create", "viewer", "--scope", "read", *data]).exit_code == 0
    bad = runner.invoke(cli, ["keys", "create", "root", "--scope", "root", *data])
    assert bad.exit_code != 0
    listed = runner.invoke(cli, ["keys", "list", *data]).stdout.splitlines()
    scopes = {line.split()[1]: line.split()[2] for line in listed}
    assert scopes == {"writer": "write", "viewer": "read"}


def test_settings_public_reads_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from app.settings import Settings

    assert Settings(data_dir=tmp_path).public_reads is False
    monkeypatch.setenv("AUTODISTILLER_PUBLIC_READS", "true")
    assert Settings(data_dir=tmp_path).public_reads is True


def test_migration_gives_existing_keys_admin_and_rows_no_owner(
    database_url: str, make_api: Any, tmp_path: Path
) -> None:
    """A database at revision 0002 with a key, a dataset and a job upgrades: the key becomes an
    admin key that still sees the old rows; a new write key does not."""
    from app.db.engine import Database
    from app.db.migrate import upgrade

    db = Database(database_url)
    token = "adk_0123456789ab_old-secret"
    try:
        with db.engine.begin() as conn:  # start from the schema before this issue
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        if db.dialect == "postgresql":
            with db.engine.begin() as conn:
                conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        upgrade(db.engine, "0002")
        now, payload = "'2026-01-01 00:00:00'", """'{"teacher": "minilm-l6"}'"""
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO api_keys (id, name, prefix, key_hash, created_at) "
                    f"VALUES ('k0', 'old', '0123456789ab', :hash, {now})"
                ),
                {"hash": hashlib.sha256(token.encode()).hexdigest()},
            )
            conn.execute(
                text(
                    "INSERT INTO datasets (id, name, source, digest, task_kind, n_train, n_dev, options, "
                    "meta_features, created_at) VALUES ('d0', 'old', 'upload', 'abc', 'classification', "
                    f"10, 2, '{{}}', '{{}}', {now})"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO jobs (id, kind, status, dataset_id, payload, gpu, time_budget_s, attempts, "
                    "max_attempts, cancel_requested, created_at) VALUES ('j0', 'distill', 'queued', 'd0', "
                    f"{payload}, false, 60, 0, 3, false, {now})"
                )
            )
        upgrade(db.engine)
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT scope FROM api_keys")).scalars().all() == ["admin"]
            owners = [
                conn.execute(text(f"SELECT owner_key_id FROM {t}")).scalar() for t in ("datasets", "jobs")
            ]
            assert owners == [None, None]
    finally:
        db.dispose()

    api = make_api()  # the same database, now migrated
    old = Api(api.client, token)
    assert old.services.store.api_keys.verify(token).scope == "admin"
    assert old.get("/datasets/d0").status_code == 200 and old.get("/jobs/j0").status_code == 200
    newcomer = api.as_new_key("write")
    assert newcomer.get("/datasets/d0").status_code == 404 and newcomer.get("/jobs/j0").status_code == 404
    assert newcomer.get("/jobs").json()["count"] == 0
