"""``bbc_pair``: a sentence-pair task built from real BBC articles.

Does this paragraph come from the article with this headline? Each article gives one positive
(its headline with one of its own body paragraphs) and one negative (its headline with a paragraph
of another article on the same topic, so topic words alone do not give the answer). The lead
paragraph, which often restates the headline, is skipped when the article has others.

Articles repeating a headline are dropped, and articles that share a paragraph (edited
re-publications) form one story. Stories are split into train/dev first and negatives are drawn
only from the same side and another story, so no text appears on both sides of the split and no
"different" pair is secretly the same story.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

from models.assets import bbc_dir
from models.data.readers import RawTable
from models.data.sources import bbc_articles, story_ids, table_from, truncate
from models.data.splits import assign_dev

PARAGRAPH_MAX_CHARS = 1000


@dataclass(frozen=True)
class _Article:
    topic: str
    doc_id: str
    headline: str
    paragraphs: tuple[str, ...]  # body paragraphs, lead first


def _pick(n: int, seed: int, *key: str) -> int:
    """A seeded index in ``range(n)`` that depends only on ``key`` (no RNG state, no hash seed)."""
    digest = hashlib.sha256("\x1f".join((str(seed), *key)).encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


def _parse(topic: str, doc_id: str, text: str) -> _Article | None:
    blocks = [" ".join(b.split()) for b in text.split("\n\n")]
    blocks = [b for b in blocks if b]
    if len(blocks) < 2:
        return None
    return _Article(topic, doc_id, blocks[0], tuple(blocks[1:]))


def _paragraph(article: _Article, seed: int, role: str) -> str:
    body = article.paragraphs[1:] or article.paragraphs  # skip the lead when there is more
    return truncate(body[_pick(len(body), seed, role, article.doc_id)], PARAGRAPH_MAX_CHARS)


def bbc_pair_table(seed: int = 13, dev_fraction: float = 0.1) -> tuple[RawTable, list[str]]:
    """Headline/paragraph pairs labelled ``same``/``different`` with a ``split`` column.

    Args:
        seed: Seed of the article split and of every paragraph/negative choice.
        dev_fraction: Share of articles (per topic) in dev.

    Returns:
        The table (columns text, text_pair, label, split, article) and notes.
    """
    raw = bbc_articles()
    story_of = dict(zip((doc_id for _, doc_id, _ in raw), story_ids([t for _, _, t in raw]), strict=True))
    seen: set[str] = set()
    articles: list[_Article] = []
    duplicates = unusable = 0
    for topic, doc_id, text in raw:
        article = _parse(topic, doc_id, text)
        unusable += article is None
        if article is None:
            continue
        if article.headline in seen:  # a re-publication: its pairs would repeat the first copy's
            duplicates += 1
            continue
        seen.add(article.headline)
        articles.append(article)
    stories = [story_of[a.doc_id] for a in articles]
    is_dev = assign_dev([a.topic for a in articles], stories, dev_fraction, seed)
    pool: dict[tuple[bool, str], list[_Article]] = defaultdict(list)
    for article, dev in zip(articles, is_dev, strict=True):
        pool[dev, article.topic].append(article)
    columns: dict[str, list] = {"text": [], "text_pair": [], "label": [], "split": [], "article": []}
    for article, dev in zip(articles, is_dev, strict=True):
        story = story_of[article.doc_id]
        # Another story: an edited copy of this article would make "different" a false label.
        others = [a for a in pool[dev, article.topic] if story_of[a.doc_id] != story]
        if not others:  # a topic with one story on this side: any other story will do
            others = [
                a for a, d in zip(articles, is_dev, strict=True) if d == dev and story_of[a.doc_id] != story
            ]
        negative = others[_pick(len(others), seed, "negative", article.doc_id)]
        for label, paragraph in (
            ("same", _paragraph(article, seed, "positive")),
            ("different", _paragraph(negative, seed, "negative-paragraph")),
        ):
            columns["text"].append(article.headline)
            columns["text_pair"].append(paragraph)
            columns["label"].append(label)
            columns["split"].append("dev" if dev else "train")
            columns["article"].append(article.doc_id)
    notes = [
        f"built from {len(articles)} distinct articles ({duplicates} repeating a headline dropped"
        + (f", {unusable} without a body" if unusable else "")
        + "); one same-article and one same-topic other-story pair each, split by story"
    ]
    return table_from(str(bbc_dir()), columns), notes
