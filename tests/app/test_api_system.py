"""Auth on every write route, the error table, offline docs, health, metrics, settings, imports."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import app
from app.errors import STATUS_BY_CODE, AppError
from app.settings import Settings
from models.errors import AutoDistillerError
from tests.app.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _write_routes(api: Api) -> list[tuple[str, str]]:
    """Every write operation the API documents (the OpenAPI schema lists all routes)."""
    paths = api.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), path)
        for path, ops in paths.items()
        for method in ops
        if method.upper() in WRITE_METHODS
    ]


def test_every_write_route_needs_a_valid_key(api: Api) -> None:
    routes = _write_routes(api)
    assert {
        ("POST", "/datasets"),
        ("DELETE", "/datasets/{dataset_id}"),
        ("POST", "/recommend"),
        ("POST", "/jobs"),
        ("POST", "/jobs/{job_id}/cancel"),
        ("POST", "/meta-learner/refit"),
    } <= set(routes)
    revoked, revoked_token = api.services.store.api_keys.create("old")
    api.services.store.api_keys.revoke(revoked.id)
    for method, path in routes:
        url = path.replace("{dataset_id}", "x").replace("{job_id}", "x")
        for headers in (
            {},
            {"X-API-Key": "adk_nope_nope"},
            {"Authorization": "Bearer wrong"},
            {"X-API-Key": revoked_token},
        ):
            response = api.client.request(method, url, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers)
            assert response.json()["error"]["code"] == "unauthorized"
    ok = api.client.post("/jobs/x/cancel", headers={"Authorization": f"Bearer {api.key}"})
    assert ok.status_code == 404  # authenticated: reaches the route


def test_no_auth_mode_only_on_loopback(make_api: Any, tmp_path: Path) -> None:
    api = make_api(auth=False)
    assert api.client.post("/jobs/x/cancel").status_code == 404
    assert api.get("/health").json()["auth"] is False
    with pytest.raises(ValueError, match="loopback"):
        Settings(data_dir=tmp_path, auth=False, host="0.0.0.0")
    assert Settings(data_dir=tmp_path, auth=False, host="::1").auth is False


def _all_subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub, *_all_subclasses(sub)}
    return out


def test_every_error_code_has_an_http_status() -> None:
    importlib.import_module("recommender.persistence")  # defines ArtifactError
    classes = {AutoDistillerError, *_all_subclasses(AutoDistillerError)}
    assert AppError in classes
    missing = {cls.__name__: cls.code for cls in classes if cls.code not in STATUS_BY_CODE}
    assert not missing
    # codes declared anywhere in the three packages, torch modules included (read, not imported)
    declared = set()
    for package in ("app", "models", "recommender"):
        for path in (ROOT / package).rglob("*.py"):
            declared |= set(re.findall(r'^\s+code = "([a-z_]+)"', path.read_text(), flags=re.M))
    assert declared and not declared - set(STATUS_BY_CODE)
    assert all(400 <= status < 600 for status in STATUS_BY_CODE.values())


def test_errors_are_json_with_a_code(api: Api) -> None:
    for response, code in (
        (api.get("/nowhere"), "not_found"),
        (api.client.put("/health"), "method_not_allowed"),
        (
            api.post("/jobs", content=b"{not json", headers={"Content-Type": "application/json"}),
            "validation_error",
        ),
        (api.get("/datasets/unknown"), "not_found"),
    ):
        assert response.json()["error"]["code"] == code
        assert response.status_code == STATUS_BY_CODE[code]


def test_docs_are_served_without_a_cdn(api: Api) -> None:
    for page in ("/docs", "/redoc"):
        html = api.get(page).text
        assert "cdn" not in html.lower() and "unpkg" not in html.lower()
        assert "/static-offline-docs/" in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        response = api.get(f"/static-offline-docs/{asset}")
        assert response.status_code == 200 and len(response.content) > 10_000
    schema = api.get("/openapi.json").json()
    assert {
        "/datasets",
        "/recommend",
        "/jobs",
        "/jobs/{job_id}/events",
        "/meta-learner",
        "/health",
        "/metrics",
    } <= set(schema["paths"])


def test_health_and_metrics(api: Api) -> None:
    health = api.get("/health").json()
    assert health["status"] == "ok" and health["database"] == "ok" and health["executor"] == "inline"
    api.get("/datasets")
    text = api.get("/metrics").text
    assert 'autodistiller_jobs{status="queued"} 0.0' in text
    assert 'autodistiller_http_requests_total{method="GET",route="/datasets",status="200"}' in text
    assert "autodistiller_meta_learner_version 1.0" in text


def test_importing_the_app_does_not_import_torch() -> None:
    code = (
        "import sys, app, app.main, app.cli, app.jobs.dispatcher, app.services.container; "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_migrations_match_the_table_definitions(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from app.db.engine import Database
    from app.db.migrate import upgrade
    from app.db.tables import Base

    db = Database(database_url)
    try:
        upgrade(db.engine)
        with db.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
    finally:
        db.dispose()


def test_sqlite_runs_in_wal_mode(services: Any) -> None:
    if services.db.dialect != "sqlite":
        pytest.skip("SQLite only")
    with services.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTODISTILLER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AUTODISTILLER_LIMITS__MAX_ROWS", "123")
    settings = Settings()
    assert settings.data_dir == tmp_path.resolve() and settings.limits.max_rows == 123
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'autodistiller.db'}"
    assert settings.resolved_model_roots == (tmp_path.resolve() / "models",)
    assert settings.executor == "local" and settings.auth is True and settings.host == "127.0.0.1"
    with pytest.raises(ValueError, match="ray_address"):
        Settings(executor="ray")


def test_keys_cli_creates_a_working_key(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from app.commands.service import cli
    from app.db.engine import Database
    from app.store import Store

    runner = CliRunner()
    result = runner.invoke(cli, ["keys", "create", "ci-bot", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    db = Database(f"sqlite:///{tmp_path / 'autodistiller.db'}")
    try:
        key = Store(db).api_keys.verify(token)
        assert key is not None and key.name == "ci-bot"
    finally:
        db.dispose()
    listed = runner.invoke(cli, ["keys", "list", "--data-dir", str(tmp_path)])
    assert "ci-bot" in listed.stdout and token not in listed.stdout
    assert runner.invoke(cli, ["keys", "revoke", key.id, "--data-dir", str(tmp_path)]).exit_code == 0


def test_app_package_is_importable_by_name() -> None:
    assert app.__doc__
