"""The day's main stories: new articles grouped by story, each story told by one cited lead.

Articles tell the same story when their leads (first chunks) are close in meaning: a report,
its near-duplicates from other outlets and its follow-ups. Stories are ordered by how many
articles carried them, then by the newest article. Works on any index view (files or database).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np

from ..store.interface import ChunkFilter, ChunkRecord, IndexView

# Two leads at least this close (cosine, all-MiniLM-L6-v2) tell one story. bench/digest.py over the
# 2,225 BBC articles at once: at 0.7 chains of close leads join different stories (Yukos with an
# India-Iran gas deal); at 0.8 the stories read as one (Yukos, the Greek sprinters, WorldCom).
SAME_STORY = 0.8
LEAD_CHARS = 320  # the lead excerpt: whole sentences up to about this many characters


@dataclass
class Story:
    """One story of the digest: the article that tells it best and all the articles that carried it."""

    lead: ChunkRecord
    articles: list[ChunkRecord] = field(default_factory=list)

    @property
    def excerpt(self) -> str:
        """The lead's first sentences, whole, within LEAD_CHARS (at least one sentence)."""
        text, spans = self.lead.text, self.lead.sentences
        if not spans:
            return text[:LEAD_CHARS].strip()
        end = spans[0][1]
        for _, e, _ in spans[1:]:
            if e - spans[0][0] > LEAD_CHARS:
                break
            end = e
        return text[spans[0][0]:end].strip()


def stories(view: IndexView, since: date | None, exclude: frozenset[str] = frozenset(), limit: int = 8,
            same_story: float = SAME_STORY) -> list[Story]:
    """The main stories of the articles published on or after since (None: all articles; those in
    exclude left out: a digest already told them), most carried first."""
    where = ChunkFilter(since=since.isoformat()) if since else None
    leads = [c for c in view.leads(where) if c.doc_id not in exclude]
    if not leads:
        return []
    vectors = view.vectors_of([c.row for c in leads])
    similar = vectors @ vectors.T
    parent = list(range(len(leads)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(similar >= same_story, k=1))):
        parent[root(int(i))] = root(int(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(leads)):
        groups.setdefault(root(i), []).append(i)
    found = []
    for members in groups.values():
        # The article closest to all the others tells the story best.
        best = max(members, key=lambda i: float(similar[i, members].sum()))
        found.append(Story(leads[best], sorted((leads[i] for i in members), key=lambda c: c.published, reverse=True)))
    found.sort(key=lambda s: (len(s.articles), s.articles[0].published), reverse=True)
    return found[:limit]
