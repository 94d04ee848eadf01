"""The edge defence against server paths: the redactor's rules and the middleware's framing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from app.api.redact import PathRedactionMiddleware, PathRedactor


def _redactor(tmp_path: Path) -> PathRedactor:
    data = tmp_path / "data dir é"
    return PathRedactor([(data / "models", None, "<model_root>"), (data, "<data_dir>", "<data_dir>")])


def test_rules(tmp_path: Path) -> None:
    r = _redactor(tmp_path)
    data = tmp_path / "data dir é"
    assert r.text(f"load {data}/models/teachers/t1 now") == "load teachers/t1 now"
    assert r.text(f"{data}/models") == "<model_root>"
    assert r.text(f"file {data}/cache/x.json") == "file <data_dir>/cache/x.json"
    assert r.text(f"{data}x/other") == f"{data}x/other"  # a longer name is another folder
    # inside JSON the non-ASCII letter is escaped: that spelling is replaced too
    encoded = json.dumps({"path": f"{data}/cache/x"}).encode()
    assert json.loads(r.bytes(encoded)) == {"path": "<data_dir>/cache/x"}
    assert r.data({"a": [f"{data}/models/m"], "n": 1}) == {"a": ["m"], "n": 1}


def _run(app: Any, redactor: PathRedactor, method: str = "GET") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "extensions": {"http.response.pathsend": {}}}
    asyncio.run(PathRedactionMiddleware(app, lambda: redactor)(scope, receive, send))
    return sent


def _file_app(body: bytes, chunk: int, content_type: bytes = b"application/json") -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["method"] != "HEAD":  # files come as body chunks, which can be scrubbed
            assert "http.response.pathsend" not in scope["extensions"]
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(0, len(body), chunk):
            more = i + chunk < len(body)
            await send({"type": "http.response.body", "body": body[i : i + chunk], "more_body": more})

    return app


def test_a_file_in_chunks_is_scrubbed_whole_with_its_length_fixed(tmp_path: Path) -> None:
    r = _redactor(tmp_path)
    body = json.dumps({"p": str(tmp_path / "data dir é" / "cache" / "x")}, ensure_ascii=False).encode() * 50
    sent = _run(_file_app(body, chunk=7), r)
    start, *bodies = sent
    whole = b"".join(m["body"] for m in bodies)
    assert dict(start["headers"])[b"content-length"] == str(len(whole)).encode()
    assert b"data dir" not in whole and whole.count(b"<data_dir>/cache/x") == 50


def test_binary_and_head_responses_pass_untouched(tmp_path: Path) -> None:
    r = _redactor(tmp_path)
    body = str(tmp_path / "data dir é").encode() * 3
    sent = _run(_file_app(body, chunk=5, content_type=b"application/gzip"), r)
    assert b"".join(m["body"] for m in sent[1:]) == body
    head = _run(_file_app(body, chunk=5), r, method="HEAD")
    assert dict(head[0]["headers"])[b"content-length"] == str(len(body)).encode()
