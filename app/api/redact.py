"""No absolute server path leaves the service: the last line of defence, at the edge.

Artifacts and messages are written with relative names where they are made; this catches what
slips through (an engine exception that names a file, a log line, a resolved model folder). Every
text response (JSON, plain text, HTML, Server-Sent Events) is scrubbed of the server's folders:

- a model root's prefix is dropped (``<root>/teachers/x`` becomes ``teachers/x``: the name a
  client gives for that model), the bare root becomes ``<model_root>``;
- the data folder becomes ``<data_dir>``; the working folder, the home folder, the Python
  installation and the temporary folder become ``<server>``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

# Binary artifacts (archives, PNG) are passed through untouched.
_TEXT_TYPES = (b"application/json", b"text/", b"application/problem+json")
# Buffer a text response with a Content-Length (a file) up to this size to scrub it whole.
_MAX_BUFFER = 32 << 20
# A path ends where a file-name character does not follow.
_END = rb"(?![\w.\-~])"


def _forms(path: str) -> set[bytes]:
    """The spellings of a path in a response: raw UTF-8 and inside a JSON string."""
    return {path.encode(), json.dumps(path)[1:-1].encode()}


class PathRedactor:
    """Replaces the server's folders in text (see the module docstring).

    Args:
        replacements: Folder -> what its prefix becomes (``None``: drop the prefix, keep the
            rest relative) and the label of the bare folder.
    """

    def __init__(self, replacements: list[tuple[Path, str | None, str]]) -> None:
        table: dict[bytes, bytes] = {}
        for folder, prefix, label in replacements:
            spellings = {str(folder)}
            with contextlib.suppress(OSError, RuntimeError):  # a folder that cannot resolve
                spellings.add(str(folder.resolve()))
            for spelling in spellings:
                if spelling in ("", "/", os.sep) or not os.path.isabs(spelling):
                    continue
                for form in _forms(spelling):
                    slash = form + b"/"
                    table.setdefault(slash, b"" if prefix is None else prefix.encode() + b"/")
                    table.setdefault(form, label.encode())
        self._table = table
        # longest first, so a model root inside the data folder wins over the data folder
        keys = sorted(table, key=len, reverse=True)
        parts = [re.escape(k) + (b"" if k.endswith(b"/") else _END) for k in keys]
        self._pattern = re.compile(b"|".join(parts)) if parts else None

    @classmethod
    def for_settings(cls, settings: Any) -> PathRedactor:
        """The folders of a running service (its settings) and of this process."""
        server = [
            Path.cwd(),
            Path.home(),
            Path(sys.prefix),
            Path(sys.base_prefix),
            Path(tempfile.gettempdir()),
            Path(__file__).resolve().parents[2],  # the installed code
        ]
        replacements: list[tuple[Path, str | None, str]] = [
            (Path(root), None, "<model_root>") for root in settings.resolved_model_roots
        ]
        replacements.append((Path(settings.data_dir), "<data_dir>", "<data_dir>"))
        replacements += [(p, "<server>", "<server>") for p in server]
        return cls(replacements)

    def bytes(self, data: bytes) -> bytes:
        if self._pattern is None:
            return data
        return self._pattern.sub(lambda m: self._table[m.group(0)], data)

    def text(self, data: str) -> str:
        return self.bytes(data.encode("utf-8", "surrogatepass")).decode("utf-8", "surrogatepass")

    def data(self, value: Any) -> Any:
        """A JSON-like value with every string scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


class PathRedactionMiddleware:
    """Scrubs every text response with the :class:`PathRedactor` of the app's services.

    Whole bodies are rewritten (and their Content-Length fixed); a stream without a length (the
    event stream) is scrubbed chunk by chunk, each chunk being whole events.
    """

    def __init__(self, app: Any, redactor: Any) -> None:
        self.app = app
        self._redactor = redactor  # a callable: the redactor may only exist once the app started

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        http = scope["type"] == "http" and scope.get("method") != "HEAD"  # HEAD: the length is the GET's
        redactor = self._redactor() if http else None
        if redactor is None:
            await self.app(scope, receive, send)
            return
        extensions = scope.get("extensions") or {}
        if "http.response.pathsend" in extensions:  # a file sent by path would bypass the scrub
            scope = {
                **scope,
                "extensions": {k: v for k, v in extensions.items() if k != "http.response.pathsend"},
            }
        start: dict[str, Any] | None = None
        buffered: list[bytes] = []
        size = 0
        mode = "pass"

        async def scrubbing_send(message: dict[str, Any]) -> None:
            nonlocal start, mode, size
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(_TEXT_TYPES):
                    mode = "whole" if b"content-length" in headers else "chunks"
                if mode == "pass":
                    await send(message)
                else:
                    start = message
                return
            if message["type"] != "http.response.body" or mode == "pass":
                if start is not None:  # never drop the held start line
                    await send(start)
                    start = None
                await send(message)
                return
            body, more = message.get("body", b""), message.get("more_body", False)
            if mode == "chunks":
                if start is not None:
                    await send(start)
                    start = None
                await send({**message, "body": redactor.bytes(body)})
                return
            buffered.append(body)
            size += len(body)
            if more and size <= _MAX_BUFFER:
                return
            whole = b"".join(buffered)
            buffered.clear()
            if start is not None:  # first flush: scrub and fix the length (a too-big file passes)
                if not more:
                    whole = redactor.bytes(whole)
                    start = _with_length(start, len(whole))
                await send(start)
                start = None
            mode = "whole" if not more else "pass"
            await send({"type": "http.response.body", "body": whole, "more_body": more})

        await self.app(scope, receive, scrubbing_send)


def _with_length(start: dict[str, Any], length: int) -> dict[str, Any]:
    headers = [(k, v) for k, v in start.get("headers") or [] if k.lower() != b"content-length"]
    headers.append((b"content-length", str(length).encode()))
    return {**start, "headers": headers}
