"""Fuzz of every route in the OpenAPI schema with hostile values (issue 18).

Every string and number field of every operation (path, query, header, JSON body and upload form
fields, found by walking the live schema) is sent a catalogue of hostile values: huge, negative,
non-finite and 20-digit numbers, ``1e400`` and ``NaN`` as raw JSON, long strings, NUL and control
characters, unicode digits, path traversal and absolute paths, wrong types and deep nesting; each
whole body is also replaced by bytes no encoder writes (not UTF-8, UTF-16, duplicate keys, a
600 KB array, 5,000 multipart parts, an unclosed boundary). A property-based pass (hypothesis)
then mixes several mutations per request with hostile ``Content-Type``, ``Content-Length``,
``Authorization``, ``X-API-Key``, ``Idempotency-Key`` and ``Last-Event-ID`` headers, with a valid
key, an admin key, a junk key and none.

Properties of every answer: no 5xx (and no exception escaping the app); no response, nor any
file inside a ``.tar.gz`` artifact, carries the server's data folder, model root, working
directory or home; a 4xx body stays small (input is never echoed whole); the process's memory
stays bounded. Each module run uses SQLite, and Postgres too when
``AUTODISTILLER_TEST_DATABASE_URL`` is set.

The app runs in process with the inline executor and no worker (jobs stay queued; two jobs are
driven to ``succeeded`` by the fake runners, so the artifact routes answer and a refit has
records). File *contents* of uploads are fuzzed in ``test_api_datasets.py``;
``bench/fuzz_server.py`` reuses the generators here against a live server, for longer.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import json
import math
import os
import re
import tarfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MAX_ERROR_BODY = 32 * 1024  # a 4xx never needs more; a bigger one echoes input
MAX_RSS_GROWTH_MB = 300
URL_VALUE_MAX = 8000  # path and query values: HTTP servers refuse longer request lines anyway

# ---- hostile values --------------------------------------------------------------------------


class Raw(str):
    """A JSON token written verbatim into the body (``1e400``, ``NaN``, a 100,000-deep array)."""


def deep(depth: int) -> Raw:
    return Raw("[" * depth + "]" * depth)


HOSTILE_NUMBERS: tuple[Any, ...] = (
    Raw("1e400"),
    Raw("-1e400"),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("-Infinity"),
    10**20,
    99999999999999999999,
    -(10**20),
    2**63,
    -(2**63) - 1,
    2**31,
    -1,
    0,
    1e308,
    -1e308,
    5e-324,
    0.5,
    -0.0,
    Raw("1" + "0" * 400),  # an integer literal of 401 digits
    Raw("9" * 5000),  # beyond Python's int-parsing digit limit
)
HOSTILE_STRINGS: tuple[Any, ...] = (
    "",
    " ",
    "a" * 100_000,
    "\x00",
    "minilm-l6\x00.evil",
    "\x01\x02\x1b[31m\x7f\x9f",
    "\r\n\r\nX-Injected: 1",
    "\t\n\v\f\r",
    "²",
    "١٢٣",  # Arabic-Indic digits
    "𝟏𝟐𝟑",  # mathematical bold digits
    "\u202egnp.exe",
    "\ud800",  # a lone surrogate (valid JSON escape, invalid UTF-8)
    "\ufeff\u200b",
    "😀" * 1000,
    "../../../../../../etc/passwd",
    "..",
    "../",
    "/etc/passwd",
    "/",
    "/proc/self/environ",
    "~",
    "~/.ssh/id_rsa",
    "C:\\Windows\\System32",
    "\\\\server\\share\\x",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "file:///etc/passwd",
    "minilm-l6/../../..",
    "rt_polarity_200/../../pyproject.toml",
    "pyproject.toml",
    "README.md",
    "{{7*7}}${7*7}",
    "' OR '1'='1' --",
    "<script>alert(1)</script>",
    "NaN",
    "1e400",
    "-1",
    "99999999999999999999",
    "null",
    "true",
)
WRONG_TYPES: tuple[Any, ...] = (
    None,
    True,
    [],
    {},
    ["x", 1, None],
    {"$ref": "#/components/schemas/KDConfig"},
    {"__proto__": {"admin": True}},
    deep(200),
    deep(100_000),
)
HOSTILE_OBJECTS: tuple[Any, ...] = (
    {"\x00": 1.0},
    {"a" * 10_000: 1.0},
    {f"unknown_{i}": 1.0 for i in range(3000)},
    {"n_train": Raw("1e400")},
)
HOSTILE_BOOLEANS: tuple[Any, ...] = ("yes", 2, "²", "true", 0)
_BOUNDARY = "fuzzboundary"
# Whole bodies a JSON encoder or a form library would never write (sent with the route's own type).
RAW_JSON_BODIES: tuple[bytes, ...] = (
    b"",
    b"null",
    b"\xff\xfe{\x00",  # not UTF-8
    '{"dataset_id": "x", "k": 2}'.encode("utf-16"),  # UTF-16 with a BOM
    b"\xef\xbb\xbf{}",  # a UTF-8 BOM
    b'{"k": 1, "k": 2, "k": "three"}',
    b'{"k":' * 20_000,  # unterminated, deep
    b"[" + b"1," * 300_000 + b"1]",  # a 600 KB array
    b"\x00" * 1000,
    b'{"dataset_id": "\\u0000"}',
    b'{"a": 1} trailing',
)
RAW_FORM_BODIES: tuple[bytes, ...] = (
    b"",
    b"--" + _BOUNDARY.encode() + b"\r\n",  # never closed
    b"".join(
        b'--%s\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % (_BOUNDARY.encode(), i)
        for i in range(5000)
    )
    + b"--%s--\r\n" % _BOUNDARY.encode(),  # 5,000 parts
    b'--%s\r\nContent-Disposition: form-data; name="file"; filename="../../x.csv"\r\n'
    b"X-Big: %s\r\n\r\ntext,label\r\n--%s--\r\n" % (_BOUNDARY.encode(), b"a" * 100_000, _BOUNDARY.encode()),
    b"--%s\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--%s--\r\n" % ((_BOUNDARY.encode(),) * 2),
    b"\x00\xff" * 1000,
)


def hostile_values(kind: str) -> tuple[Any, ...]:
    """The catalogue for a field of JSON type ``kind``: its own hostile values, then other types."""
    if kind in ("integer", "number"):
        return HOSTILE_NUMBERS + HOSTILE_STRINGS[::4] + WRONG_TYPES
    if kind == "string":
        return HOSTILE_STRINGS + HOSTILE_NUMBERS[::3] + WRONG_TYPES
    if kind == "boolean":
        return HOSTILE_BOOLEANS + WRONG_TYPES
    if kind == "object":
        return HOSTILE_OBJECTS + WRONG_TYPES + HOSTILE_STRINGS[:4]
    if kind == "json":  # a raw body
        return RAW_JSON_BODIES
    if kind == "form":
        return RAW_FORM_BODIES
    return WRONG_TYPES + HOSTILE_STRINGS[::3] + HOSTILE_NUMBERS[::3]  # arrays and anything else


def as_text(value: Any) -> str:
    """A value as it travels in a URL, a header or a form field."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def dumps(body: Any) -> bytes:
    """JSON with :class:`Raw` tokens written verbatim and lone surrogates kept as escapes."""
    raws: dict[str, str] = {}

    def mark(value: Any) -> Any:
        if isinstance(value, Raw):
            tag = f"@@raw{len(raws)}@@"
            raws[tag] = str(value)
            return tag
        if isinstance(value, dict):
            return {mark(k) if isinstance(k, Raw) else k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return mark(Raw("NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")))
        return value

    text = json.dumps(mark(body))  # ensure_ascii: a lone surrogate becomes "\ud800"
    for tag, token in raws.items():
        text = text.replace(f'"{tag}"', token)
    return text.encode()


# ---- the schema: operations and their fields -------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One input of an operation: where it goes, its name or JSON path, its JSON type."""

    location: str  # path | query | header | body | form
    path: tuple[str | int, ...]
    kind: str

    @property
    def name(self) -> str:
        return f"{self.location}.{'.'.join(str(p) for p in self.path)}" if self.path else self.location


@dataclass
class Operation:
    method: str
    path: str
    fields: list[Field]
    body: str | None  # "json" | "form" | None

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _kinds(schema: dict[str, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null branches of a schema (``anyOf``/``oneOf``/``allOf`` flattened)."""
    schema = _resolve(schema, components)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return [b for s in schema[key] for b in _kinds(s, components)]
    return [] if schema.get("type") == "null" else [schema]


def walk(
    schema: dict[str, Any], components: dict[str, Any], prefix: tuple[str | int, ...], depth: int = 0
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every field under ``schema``: ``(json path, json type)``, objects and arrays included."""
    for branch in _kinds(schema, components):
        kind = branch.get("type") or ("object" if "properties" in branch else "any")
        if "enum" in branch and kind == "any":
            kind = "string"
        yield prefix, kind
        if depth > 8:
            continue
        if kind == "object":
            for name, sub in branch.get("properties", {}).items():
                yield from walk(sub, components, (*prefix, name), depth + 1)
            extra = branch.get("additionalProperties")
            if isinstance(extra, dict) and extra:
                yield from walk(extra, components, (*prefix, "n_train"), depth + 1)
        elif kind == "array":
            items = branch.get("prefixItems") or [branch.get("items") or {}]
            for i, sub in enumerate(items):
                yield from walk(sub, components, (*prefix, i), depth + 1)


def operations(openapi: dict[str, Any]) -> list[Operation]:
    """Every operation of the schema with its fields (body and form fields, then parameters)."""
    components = openapi.get("components", {}).get("schemas", {})
    ops = []
    for path, methods in openapi["paths"].items():
        for method, spec in methods.items():
            found: dict[tuple[str, tuple[str | int, ...]], str] = {}
            for param in spec.get("parameters", []):
                for _, kind in walk(param.get("schema", {}), components, ()):
                    found.setdefault((param["in"], (param["name"],)), kind)
            content = spec.get("requestBody", {}).get("content", {})
            body = None
            if "application/json" in content:
                body = "json"
                for jpath, kind in walk(content["application/json"]["schema"], components, ()):
                    found.setdefault(("body", jpath), kind)
            elif "multipart/form-data" in content:
                body = "form"
                for jpath, kind in walk(content["multipart/form-data"]["schema"], components, ()):
                    if len(jpath) == 1 and jpath[0] != "file":
                        found.setdefault(("form", jpath), kind)
            fields = [Field(loc, p, kind) for (loc, p), kind in found.items()]
            if body is not None:  # the whole body, bytes as sent
                fields.append(Field("raw", (), body))
            ops.append(Operation(method.upper(), path, fields, body))
    return ops


def _schema() -> dict[str, Any]:
    from app.main import create_app
    from app.settings import Settings

    # only the route table is read: no lifespan, no database
    return create_app(Settings(data_dir=Path("/nonexistent-fuzz"), auth=True)).openapi()


OPENAPI = _schema()
OPERATIONS = operations(OPENAPI)


# ---- requests --------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    content: bytes | None = None
    data: dict[str, str] | None = None
    files: dict[str, Any] | None = None
    template: str = ""  # the operation's path, e.g. /jobs/{job_id}
    json_body: Any = None  # the JSON body before encoding (it may hold Raw tokens)

    def httpx_kwargs(self, auth: dict[str, str]) -> dict[str, Any]:
        """Arguments of ``httpx.Client.build_request``; text that UTF-8 cannot carry (a lone
        surrogate) is sent as its ``surrogatepass`` bytes, as a raw client could."""
        headers = {k: v if isinstance(v, bytes) else utf8(v) for k, v in {**auth, **self.headers}.items()}
        url = self.url
        if self.params:
            url += "?" + "&".join(f"{quote(k)}={quote(utf8(v), safe='')}" for k, v in self.params.items())
        content, files = self.content, self.files
        data = {k: utf8(v) for k, v in self.data.items()} if self.data is not None else None
        if data is not None and not files:  # urlencoded by hand: httpx would refuse the bytes
            content = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in data.items()).encode()
            headers.setdefault("Content-Type", b"application/x-www-form-urlencoded")
            data = None
        return {
            "method": self.method,
            "url": url,
            "headers": headers,
            "content": content,
            "data": data,
            "files": files,
        }

    def summary(self, limit: int = 300) -> str:
        body = self.content[:limit] if isinstance(self.content, bytes) else self.data
        headers = {k: (v[:80] if isinstance(v, str | bytes) else v) for k, v in self.headers.items()}
        params = str(self.params)[:limit]
        return f"{self.method} {self.url[:limit]} params={params} headers={headers} body={str(body)[:limit]}"


def set_in(body: Any, path: tuple[str | int, ...], value: Any) -> Any:
    """A copy of ``body`` with ``value`` at ``path`` (missing objects and lists are made)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(body) if isinstance(body, list) else []
        while len(items) <= head:
            items.append({} if rest and isinstance(rest[0], str) else None)
        items[head] = set_in(items[head], rest, value)
        return items
    out = dict(body) if isinstance(body, dict) else {}
    out[head] = set_in(out.get(head), rest, value)
    return out


def get_in(body: Any, path: tuple[str | int, ...]) -> Any:
    for p in path:
        if isinstance(p, int):
            body = body[p] if isinstance(body, list) and len(body) > p else None
        else:
            body = body.get(p) if isinstance(body, dict) else None
    return body


TINY_CSV = "text,label\n" + "".join(
    f"sample text number {i} is {'good' if i % 2 else 'bad'},{i % 2}\n" for i in range(40)
)


@dataclass
class Context:
    """Ids of real objects, so that hostile values reach the logic behind the validation."""

    ids: dict[str, str]
    secrets: tuple[str, ...]
    database: str = "sqlite"

    def baselines(self, op: Operation) -> list[Request]:
        """Valid requests for ``op`` (a field is mutated in the first one that names it)."""
        ids = self.ids
        tail = op.path[op.path.rfind("/") :]  # /cancel, /events, ...
        job = {"/cancel": ids["cancel_job"], "/events": ids.get("events_job")}.get(tail)
        search = {"/cancel": ids.get("cancel_search"), "/events": ids.get("cancelled_search")}.get(tail)
        path_values = {
            "dataset_id": ids["victim_dataset"] if op.method == "DELETE" else ids["dataset"],
            "job_id": job or ids["succeeded_job"],  # a finished job: its event stream ends at once
            "recommendation_id": ids["recommendation"],
            "sweep_id": ids["sweep"],
            "search_id": search or ids.get("search"),
            "name": "report.json",
        }
        url = re.sub(r"\{(\w+)\}", lambda m: quote(path_values.get(m[1]) or "unknown-id", safe=""), op.path)
        params = {"timeout_s": "1"} if op.path.endswith("/events") else {}
        if op.body == "form":
            return [
                Request(
                    op.method,
                    url,
                    data={"name": "fuzz upload", "text_column": "text", "label_column": "label"},
                    files={"file": ("fuzz.csv", TINY_CSV.encode(), "text/csv")},
                    template=op.path,
                ),
                Request(
                    op.method,
                    url,
                    data={"builtin": "rt_polarity_200", "name": "fuzz builtin"},
                    template=op.path,
                ),
            ]
        bodies = JSON_BASELINES.get(op.name, lambda ids: [{}])(ids) if op.body == "json" else [None]
        json_type = {"Content-Type": "application/json"}
        return [
            Request(op.method, url, dict(params), json_type, dumps(b), template=op.path, json_body=b)
            if b is not None
            else Request(op.method, url, dict(params), template=op.path)
            for b in bodies
        ]


def _jobs(ids: dict[str, str]) -> list[dict[str, Any]]:
    training = {"epochs": 1, "batch_size": 8, "max_length": 32, "learning_rate": 1e-4, "max_steps": 1}
    kd = {
        "augmentation": {"pipeline": [], "aug_p": 0.1, "mode": "pipeline", "repeated_aug": 1},
        "mixup": {"enabled": False, "alpha": 0.4},
        "prediction": {"loss": "ce", "temperature": 2.0},
        "intermediate": {"loss": "mi", "alpha": 0.5, "strategy": "skip"},
        "weights": {"kd": 1.0, "intermediate": 1.0, "hard": 0.0},
        "training": training,
    }
    common = {
        "dataset_id": ids["dataset"],
        "teacher": "minilm-l6",
        "student": {"num_layers": 2},
        "teacher_training": {"epochs": 1, "learning_rate": 1e-4, "batch_size": 8, "max_length": 32},
        "resources": {"gpu": False, "time_budget_s": 600},
        "deliver": False,
        "measure_latency": False,
    }
    return [
        {**common, "kd_config": kd},
        {**common, "recommendation_id": ids["recommendation"], "rank": 1, "training": training},
    ]


JSON_BASELINES = {
    "POST /recommend": lambda ids: [
        {"dataset_id": ids["dataset"], "k": 3, "teacher": "minilm-l6", "student": {"num_layers": 2}},
        {
            "meta_features": {"n_train": 500.0, "is_regression": 0.0, "n_labels": 2.0},
            "task_kind": "classification",
            "budget": {"max_layers": 2, "max_params": 20_000_000},
            "k": 2,
        },
    ],
    "POST /jobs": _jobs,
    "POST /sweeps": lambda ids: [
        {
            "name": "fuzz sweep",
            "dataset_ids": [ids["dataset"]],
            "teacher": "minilm-l6",
            "students": [{"num_layers": 1}],
            "space": "grid",
            "budget": 1,
            "seed": 0,
            "grid": {
                "intermediate_losses": ["mi"],
                "strategies": ["skip"],
                "mi_alphas": [0.5],
                "kd_losses": ["ce"],
                "mixup": [False],
                "augmenters": ["delete"],
                "max_pipeline_length": 0,
                "aug_ps": [0.1],
            },
            "training": {"epochs": 1, "max_steps": 1},
            "resources": {"gpu": False},
            "deliver": False,
        }
    ],
    "POST /meta-learner/refit": lambda ids: [{"evaluate": False}],
    "POST /searches": lambda ids: [
        {
            "name": "fuzz search",
            "dataset_id": ids["dataset"],
            "teacher": "minilm-l6",
            "student": {"num_layers": 1},
            "max_runs": 2,
            "max_seconds": 600,
            "portfolio_size": 1,
            "min_epochs": 1,
            "reduction_factor": 3,
            "parallel": 1,
            "seed": 0,
            "grid": {"intermediate_losses": ["mi", "none"], "mi_alphas": [0.5], "max_pipeline_length": 0},
            "training": {"epochs": 1, "max_steps": 1},
            "teacher_training": {"epochs": 1},
            "resources": {"gpu": False, "time_budget_s": 600},
        },
        {"dataset_id": ids["dataset"], "budget": {"max_layers": 2, "max_params": 20_000_000}, "max_runs": 1},
    ],
}


def mutate(base: Request, op_field: Field, value: Any) -> Request:
    """``base`` with one field set to ``value``."""
    req = copy.deepcopy(base)
    loc, path = op_field.location, op_field.path
    if loc == "path":
        parts, filled = req.template.split("/"), base.url.split("/")
        req.url = "/".join(
            quote(utf8(as_text(value)[:URL_VALUE_MAX]), safe="") if part == f"{{{path[0]}}}" else filled[i]
            for i, part in enumerate(parts)
        )
    elif loc == "query":
        req.params[str(path[0])] = as_text(value)[:URL_VALUE_MAX]
    elif loc == "header":
        req.headers[str(path[0])] = header_value(value)
    elif loc == "form":
        req.data = {**(req.data or {}), str(path[0]): as_text(value)}
    elif loc == "body":
        req.json_body = set_in(req.json_body, path, value)
        req.content = dumps(req.json_body)
    elif loc == "raw":
        req.content, req.data, req.files = value, None, None
        if op_field.kind == "form":
            req.headers["Content-Type"] = f"multipart/form-data; boundary={_BOUNDARY}"
    return req


def utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def header_value(value: Any) -> bytes:
    """A value as a header can carry it: control characters other than tab are dropped (an HTTP
    parser refuses them before any app sees them), the rest is UTF-8."""
    text = as_text(value)
    return utf8("".join(c for c in text if c == "\t" or (ord(c) >= 32 and ord(c) != 127)))


def baseline_for(ctx: Context, op: Operation, op_field: Field) -> Request:
    """The first baseline whose body already has the field's top-level key (else the first)."""
    options = ctx.baselines(op)
    if op_field.location == "form" and op_field.path[0] == "builtin":
        return options[-1]
    if op_field.location == "body":
        for req in options:
            if op_field.path[:1] and get_in(req.json_body, op_field.path[:1]):
                return req
    return options[0]


# ---- the properties --------------------------------------------------------------------------


def archive_text(content: bytes) -> str:
    """The files inside a .tar.gz answer (an artifact), as text; '' for anything else."""
    if not content.startswith(b"\x1f\x8b"):
        return ""
    parts = []
    with (
        contextlib.suppress(tarfile.TarError, OSError, EOFError),
        tarfile.open(fileobj=io.BytesIO(content)) as tar,
    ):
        for member in tar:
            file = tar.extractfile(member) if member.isfile() else None
            parts.append(member.name + (member.linkname or ""))
            if file is not None:
                parts.append(file.read(2**20).decode("utf-8", "replace"))
    return "\n".join(parts)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Fuzzer:
    """Sends requests through a TestClient and collects every broken property."""

    client: Any
    ctx: Context
    keys: dict[str, str]  # auth mode -> token: key (write scope), admin
    failures: list[str] = field(default_factory=list)
    peak_rss_mb: float = 0.0

    def auth(self, mode: str) -> dict[str, str]:
        if mode == "bearer":
            return {"Authorization": f"Bearer {self.keys['key']}"}
        return {"X-API-Key": self.keys[mode]} if mode in self.keys else {}

    def send(self, req: Request, auth: str = "key") -> int:
        try:
            request = self.client.build_request(**req.httpx_kwargs(self.auth(auth)))
        except Exception as exc:  # a fuzzer bug, not a finding: fail loudly
            raise AssertionError(f"the fuzzer built a request it cannot send: {req.summary()}") from exc
        try:
            response = self.client.send(request)
        except Exception as exc:  # the app raised: a server would have answered 500
            tb = "".join(traceback.format_exception(exc))[-1500:]
            self.failures.append(f"exception [{auth}] {req.summary()}\n{tb}")
            return 599
        self.peak_rss_mb = max(self.peak_rss_mb, rss_mb())
        text = response.text + archive_text(response.content)
        problems = []
        if response.status_code >= 500:
            problems.append(f"status {response.status_code}")
        leaked = [s for s in self.ctx.secrets if s in text or any(s in v for v in response.headers.values())]
        if leaked:
            problems.append(f"leaks server path(s) {leaked}")
        if 400 <= response.status_code < 500 and len(response.content) > MAX_ERROR_BODY:
            problems.append(f"a {len(response.content)}-byte error body (input echoed?)")
        if problems:
            self.failures.append(f"{'; '.join(problems)} [{auth}] {req.summary()}\n-> {text[:600]}")
        return response.status_code

    def check(self) -> None:
        assert not self.failures, f"{len(self.failures)} broken properties; first ones:\n\n" + "\n\n".join(
            self.failures[:12]
        )


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fuzz_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, meta_learner_artifact: Path
) -> Iterator[tuple[Any, Context, dict[str, str]]]:
    """One app per module (and database): its keys and the ids of real objects to aim at."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.app.conftest import Api, _reset_postgres, make_settings

    tmp = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'autodistiller.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        _reset_postgres(url)
    settings = make_settings(tmp, url, meta_learner={"artifact": meta_learner_artifact}, auth=True)
    with TestClient(create_app(settings)) as client:
        store = client.app.state.services.store
        _, key = store.api_keys.create("fuzz")
        keys = {"key": key, "admin": _admin_key(store)}
        api = Api(client, key)
        ids = _seed(api)
        home = str(Path.home())
        secrets = (str(tmp), str(settings.data_dir), *map(str, settings.resolved_model_roots), str(ROOT))
        secrets += (home,) if len(home) > 5 else ()
        yield client, Context(ids, secrets, request.param), keys


def _admin_key(store: Any) -> str:
    """An admin key where keys have scopes (refitting the meta-learner needs one), else a plain key."""
    if "scope" in inspect.signature(store.api_keys.create).parameters:
        return store.api_keys.create("fuzz-admin", scope="admin")[1]
    return store.api_keys.create("fuzz-admin")[1]


def _seed(api: Any) -> dict[str, str]:
    """Real objects of every kind: a dataset, a recommendation, a succeeded, a cancelled and a
    queued job, a sweep, searches (to read, cancelled, to cancel) and a dataset to delete; two
    sweep records to refit on (of one dataset: a refit then skips the leave-one-dataset-out
    evaluation, seconds per refit otherwise)."""
    dataset = api.builtin_dataset()["id"]
    victim = api.post("/datasets", data={"builtin": "rt_polarity_200", "name": "victim"}).json()["id"]
    rec = api.post("/recommend", json={"dataset_id": dataset, "k": 3}).json()["id"]
    quick = {"training": {"max_steps": 1, "epochs": 1}}
    succeeded = api.post("/jobs", json={"dataset_id": dataset, "kd_config": quick}).json()["id"]
    other = {"training": {"max_steps": 1, "epochs": 1, "seed": 7}, "intermediate": {"loss": "mse"}}
    api.post("/jobs", json={"dataset_id": dataset, "kd_config": other})
    api.drain()
    assert api.services.store.sweep_records.count() == 2
    assert api.get(f"/jobs/{succeeded}", headers=api.auth).json()["status"] == "succeeded"
    cancelled = api.post("/jobs", json={"dataset_id": dataset, "kd_config": quick}).json()["id"]
    assert api.post(f"/jobs/{cancelled}/cancel").status_code == 200
    to_cancel = api.post("/jobs", json={"dataset_id": dataset, "kd_config": quick}).json()["id"]
    sweep = api.post("/sweeps", json={"dataset_ids": [dataset], "budget": 1}).json()["id"]
    ids = {
        "dataset": dataset,
        "victim_dataset": victim,
        "recommendation": rec,
        "succeeded_job": succeeded,
        "cancelled_job": cancelled,
        "cancel_job": to_cancel,
        "sweep": sweep,
    }
    if "POST /searches" in {op.name for op in OPERATIONS}:
        search = {"dataset_id": dataset, "max_runs": 1, "portfolio_size": 1}
        for name in ("search", "cancelled_search", "cancel_search"):
            response = api.post("/searches", json=search)
            assert response.status_code == 202, response.text
            ids[name] = response.json()["id"]
        assert api.post(f"/searches/{ids['cancelled_search']}/cancel").status_code == 200
    return ids


# ---- the tests -------------------------------------------------------------------------------

FIELD_CASES = [(op, f) for op in OPERATIONS for f in op.fields]

# Cases that still fail on an issue 18 bug not fixed yet: (database, case) -> the bug. Each is a
# strict xfail, so the fix turns it into a failure that asks for its removal here.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


def expect_known_failure(request: pytest.FixtureRequest, ctx: Context, case: str) -> None:
    reason = KNOWN_FAILURES.get((ctx.database, case))
    if reason:  # the database comes from a fixture parameter: the mark is added at run time
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=f"issue 18: {reason}"))


def _case_id(case: tuple[Operation, Field]) -> str:
    op, f = case
    return f"{op.method} {op.path} {f.name}"


def test_the_schema_walk_finds_every_operation_and_nested_field() -> None:
    names = {op.name: {f.name for f in op.fields} for op in OPERATIONS}
    documented = {f"{m.upper()} {p}" for p, ms in OPENAPI["paths"].items() for m in ms}
    assert set(names) == documented and len(documented) >= 20
    assert {"body.kd_config.prediction.temperature", "body.student.checkpoint", "header.idempotency-key"} <= (
        names["POST /jobs"]
    )
    assert {"body.meta_features.n_train", "body.budget.max_params"} <= names["POST /recommend"]
    assert {"header.last-event-id", "query.after", "path.job_id"} <= names["GET /jobs/{job_id}/events"]
    assert "body.grid.mi_alphas.0" in names["POST /sweeps"]
    assert "form.dev_fraction" in names["POST /datasets"]


def test_every_baseline_request_succeeds(fuzz_app: tuple[Any, Context, dict[str, str]]) -> None:
    """The requests the fuzz mutates are valid: hostile values reach the logic, not only the schema."""
    client, ctx, keys = fuzz_app
    fuzzer = Fuzzer(client, ctx, keys)
    for op in OPERATIONS:
        for req in ctx.baselines(op):
            status = fuzzer.send(req, auth_for(op))
            assert 200 <= status < 300 or op.name not in KNOWN_OPS, (op.name, status, fuzzer.failures[-1:])
    from app.schemas.jobs import ARTIFACT_NAMES

    job = ctx.ids["succeeded_job"]
    listed = client.get(f"/jobs/{job}/artifacts", headers=fuzzer.auth("key")).json()["data"]
    assert "report.json" in listed and "student.tar.gz" in listed, listed
    stream = client.get(f"/jobs/{job}/events", headers=fuzzer.auth("key")).text  # what the fuzz reads
    assert "event: progress" in stream and "event: end" in stream, stream[-500:]
    for name in ARTIFACT_NAMES:  # every artifact, archives opened: none names a server folder
        assert fuzzer.send(Request("GET", f"/jobs/{job}/artifacts/{name}")) == (
            200 if name in listed else 404
        )
    fuzzer.check()


ADMIN_OPS = {"POST /meta-learner/refit"}


def auth_for(op: Operation) -> str:
    return "admin" if op.name in ADMIN_OPS else "key"


KNOWN_OPS = {
    "POST /datasets",
    "GET /datasets",
    "GET /datasets/{dataset_id}",
    "DELETE /datasets/{dataset_id}",
    "POST /recommend",
    "GET /recommendations/{recommendation_id}",
    "POST /jobs",
    "GET /jobs",
    "GET /jobs/{job_id}",
    "GET /jobs/{job_id}/events",
    "GET /jobs/{job_id}/logs",
    "POST /jobs/{job_id}/cancel",
    "GET /jobs/{job_id}/artifacts",
    "GET /jobs/{job_id}/artifacts/{name}",
    "POST /sweeps",
    "GET /sweeps",
    "GET /sweeps/{sweep_id}",
    "GET /sweeps/{sweep_id}/records",
    "GET /meta-learner",
    "POST /meta-learner/refit",
    "GET /sweep-records",
    "POST /searches",
    "GET /searches",
    "GET /searches/{search_id}",
    "POST /searches/{search_id}/cancel",
    "GET /searches/{search_id}/events",
}


@pytest.mark.parametrize("case", FIELD_CASES, ids=[_case_id(c) for c in FIELD_CASES])
def test_every_field_with_every_hostile_value(
    request: pytest.FixtureRequest,
    fuzz_app: tuple[Any, Context, dict[str, str]],
    case: tuple[Operation, Field],
) -> None:
    client, ctx, keys = fuzz_app
    expect_known_failure(request, ctx, _case_id(case))
    op, op_field = case
    fuzzer = Fuzzer(client, ctx, keys)
    base = baseline_for(ctx, op, op_field)
    for value in hostile_values(op_field.kind):
        fuzzer.send(mutate(base, op_field, value), auth_for(op))
    fuzzer.check()


# A request is 1-3 field mutations plus, often, a hostile header; with a key, a junk key or none.
CONTENT_TYPES = (
    "text/plain",
    "application/json; charset=utf-16",
    "application/json; charset=nonsense",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=" + "x" * 5000,
    "application/xml",
    "application/json, text/html",
    "²/²",
    "",
)
AUTH_HEADERS = (
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer " + "x" * 10_000},
    {"Authorization": "Bearer ²".encode()},
    {"Authorization": "Bearer adk_0000_" + "A" * 43},
    {"X-API-Key": ""},
    {"X-API-Key": "x" * 10_000},
    {"X-API-Key": "adk_\xff\xfe".encode("latin-1")},
    {"X-API-Key": "' OR 1=1 --"},
)
OTHER_HEADERS = (
    {"Last-Event-ID": "99999999999999999999"},
    {"Last-Event-ID": "²"},
    {"Last-Event-ID": "-1"},
    {"Last-Event-ID": "1e400"},
    {"Last-Event-ID": "x" * 5000},
    {"Idempotency-Key": "x" * 5000},
    {"Idempotency-Key": "../../etc/passwd"},
    {"Idempotency-Key": "²".encode()},
    {"Idempotency-Key": ""},
    {"Idempotency-Key": "fuzz-key"},
    {"Content-Length": "0"},
    {"Content-Length": "1"},
    {"Content-Length": "99999999999999999999"},
    {"Accept": "text/event-stream"},
    {"Accept-Encoding": "gzip, deflate, br, zstd, *"},
    {"Transfer-Encoding": "chunked"},
    {"X-Forwarded-For": "127.0.0.1, ../../"},
    {"Host": "evil.example:99999"},
)


def _hostile_scalar() -> st.SearchStrategy[Any]:
    """Hypothesis' own values besides the catalogue: any text, integer or float."""
    return st.one_of(
        st.text(max_size=300),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(HOSTILE_NUMBERS + HOSTILE_STRINGS + WRONG_TYPES[:-1] + HOSTILE_OBJECTS[:2]),
    )


@st.composite
def hostile_requests(draw: st.DrawFn, op: Operation, ctx: Context) -> tuple[Request, str]:
    fields = op.fields
    req = draw(st.sampled_from(ctx.baselines(op)))
    if fields:
        for op_field in draw(st.lists(st.sampled_from(fields), max_size=3, unique=True)):
            catalogue = st.sampled_from(hostile_values(op_field.kind))
            value = draw(catalogue if op_field.location == "raw" else st.one_of(catalogue, _hostile_scalar()))
            req = mutate(req, op_field, value)
    extra = draw(st.sampled_from(({},) + AUTH_HEADERS + OTHER_HEADERS))
    if op.body is not None and draw(st.booleans()):
        extra = {**extra, "Content-Type": draw(st.sampled_from(CONTENT_TYPES))}
    req.headers = {**req.headers, **extra}
    auth = draw(st.sampled_from(("key", "bearer", "admin", "none")))
    if any(k in extra for k in ("Authorization", "X-API-Key")):
        auth = "none"  # the junk credentials are the only ones sent
    return req, auth


EXAMPLES = {"POST /meta-learner/refit": 10}  # a valid refit fits a meta-learner (about a second)


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
def test_random_hostile_requests(
    request: pytest.FixtureRequest, fuzz_app: tuple[Any, Context, dict[str, str]], op: Operation
) -> None:
    client, ctx, keys = fuzz_app
    expect_known_failure(request, ctx, f"random {op.name}")
    fuzzer = Fuzzer(client, ctx, keys)

    # examples are only collected (nothing raises inside), so there is nothing to shrink
    @settings(
        max_examples=EXAMPLES.get(op.name, 40),
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=hostile_requests(op, ctx))
    def run(case: tuple[Request, str]) -> None:
        fuzzer.send(*case)

    run()
    fuzzer.check()


def test_memory_stays_bounded_under_the_fuzz(
    request: pytest.FixtureRequest, fuzz_app: tuple[Any, Context, dict[str, str]]
) -> None:
    """The largest hostile inputs in every field: resident memory grows by less than
    MAX_RSS_GROWTH_MB (peak RSS of this process, sampled after each answer)."""
    client, ctx, keys = fuzz_app
    expect_known_failure(request, ctx, "memory")
    fuzzer = Fuzzer(client, ctx, keys)
    start = rss_mb()
    big = ("a" * 100_000, deep(100_000), HOSTILE_OBJECTS[2])
    for op in OPERATIONS:
        for op_field in op.fields:
            base = baseline_for(ctx, op, op_field)
            for value in hostile_values(op_field.kind) if op_field.location == "raw" else big:
                fuzzer.send(mutate(base, op_field, value), auth_for(op))
    assert fuzzer.peak_rss_mb - start < MAX_RSS_GROWTH_MB, (start, fuzzer.peak_rss_mb)
    fuzzer.check()


def test_dumps_writes_raw_tokens_and_nested_values() -> None:
    body = {"a": Raw("1e400"), "b": [Raw("NaN"), float("inf")], "c": "\ud800", "d": deep(2)}
    assert dumps(body) == b'{"a": 1e400, "b": [NaN, Infinity], "c": "\\ud800", "d": [[]]}'
    assert set_in({"x": {"y": 1}}, ("x", "z", 0, "w"), 5) == {"x": {"y": 1, "z": [{"w": 5}]}}
    assert mutate(
        Request("GET", "/jobs/abc/logs", template="/jobs/{job_id}/logs"),
        Field("path", ("job_id",), "string"),
        "a/b",
    ).url == ("/jobs/a%2Fb/logs")


def test_the_fuzzer_reports_a_5xx_an_exception_a_path_leak_and_an_echo(tmp_path: Path) -> None:
    """The properties are checked for real: a tiny app that breaks each one is caught each time."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response
    from fastapi.testclient import TestClient

    broken = FastAPI()

    @broken.get("/status")
    def status() -> JSONResponse:
        return JSONResponse({"error": "unavailable"}, status_code=503)

    @broken.get("/raises")
    def raises() -> None:
        raise ValueError("embedded null byte")

    @broken.get("/leaks")
    def leaks() -> dict[str, str]:
        return {"message": f"put models under {tmp_path / 'models'}"}

    @broken.get("/archive")
    def archive() -> Response:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz") as tar:
            data = f'{{"_name_or_path": "{tmp_path}/run/student"}}'.encode()
            info = tarfile.TarInfo("student/config.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return Response(out.getvalue(), media_type="application/gzip")

    @broken.get("/echoes")
    def echoes(q: str = "") -> JSONResponse:
        return JSONResponse({"error": f"unknown {q}"}, status_code=404)

    fuzzer = Fuzzer(TestClient(broken), Context({}, (str(tmp_path),)), {})
    for url in ("/status", "/raises", "/leaks", "/archive", "/echoes?q=" + "a" * 40_000):
        fuzzer.send(Request("GET", url), auth="none")
    echo = len(fuzzer.client.get("/echoes?q=" + "a" * 40_000).content)
    starts = ("status 503 [none]", "exception [none]", "leaks server", "leaks server", f"a {echo}-byte error")
    assert len(fuzzer.failures) == 5 and all(map(str.startswith, fuzzer.failures, starts)), fuzzer.failures
    assert "ValueError: embedded null byte" in fuzzer.failures[1]
    assert "/archive" in fuzzer.failures[3]
    with pytest.raises(AssertionError, match="5 broken properties"):
        fuzzer.check()


def test_refit_refuses_a_misspelt_field(fuzz_app: tuple[Any, Context, dict[str, str]]) -> None:
    """Found by the fuzz: unknown refit fields were dropped, so ``{"evalute": false}`` ran the
    leave-one-dataset-out evaluation it meant to skip."""
    client, _, keys = fuzz_app
    response = client.post(
        "/meta-learner/refit", json={"evalute": False}, headers={"X-API-Key": keys["admin"]}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["body", "evalute"]
