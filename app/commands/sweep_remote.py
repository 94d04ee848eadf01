"""``autodistiller sweep --server URL``: submit a sweep to a running service and follow it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from app.commands.sweep import build_request, fail, write_sweep_records

POLL_S = 5.0


def _check(response: Any) -> Any:
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            message = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            message = response.text[:500]
        raise fail(
            f"{response.request.method} {response.request.url.path} -> {response.status_code} {message}", 1
        )
    return response.json()


def _dataset(client: Any, source: str) -> str:
    """The server's id for a built-in name (registered once) or an uploaded file."""
    path = Path(source)
    if path.is_file():
        with path.open("rb") as fh:
            return _check(client.post("/datasets", files={"file": (path.name, fh)}))["id"]
    offset = 0
    while True:
        page = _check(client.get("/datasets", params={"offset": offset, "limit": 200}))
        for d in page["data"]:
            if d["builtin_name"] == source:
                return d["id"]
        offset += len(page["data"])
        if not page["data"] or offset >= page["count"]:
            return _check(client.post("/datasets", data={"builtin": source}))["id"]


def run_remote(
    server: str,
    api_key: str | None,
    sources: list[str],
    fields: dict[str, Any],
    *,
    records_out: Path | None,
    wait: bool,
    dry_run: bool,
) -> None:
    """Submit the sweep; with ``wait``, print progress until no run is queued or running."""
    import httpx

    if dry_run:
        raise fail("--dry-run plans on this machine; leave out --server")
    headers = {"X-API-Key": api_key} if api_key else {}
    with httpx.Client(base_url=server, headers=headers, timeout=300) as client:
        ids = [_dataset(client, s) for s in sources]
        req = build_request(dataset_ids=ids, **fields)
        sweep = _check(client.post("/sweeps", json=req.model_dump(mode="json")))
        typer.echo(f"sweep {sweep['id']}: {sweep['n_runs']} runs; {sweep['counts']}")
        if not wait:
            return
        last = None
        while not sweep["done"]:
            time.sleep(POLL_S)
            sweep = _check(client.get(f"/sweeps/{sweep['id']}"))
            if sweep["counts"] != last:
                last = sweep["counts"]
                best = sweep["best"]
                typer.echo(f"{last}" + (f"; best ratio {best['ratio']:.4f}" if best else ""))
        if records_out is not None:
            records = _check(client.get(f"/sweeps/{sweep['id']}/records"))["data"]
            typer.echo(f"wrote {write_sweep_records(records, records_out)} records to {records_out}")
        if sweep["counts"].get("failed") or sweep["counts"].get("cancelled"):
            raise typer.Exit(1)
