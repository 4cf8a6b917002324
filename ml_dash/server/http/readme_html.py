"""Experiment readmes as HTML: CommonMark (plus tables and strikethrough) rendered by markdown-it-py.

Raw HTML in a readme is disabled, so ``<script>`` or ``<img onerror=...>`` come out as text, and markdown-it's link
check refuses ``javascript:``/``vbscript:``/``file:`` URLs. The dashboard still copies the answer into the page
through an allow-list of elements and attributes (``static/js/markdown.js``): the server's output is not trusted on
its own either.
"""
from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def readme_html(readme: str | None) -> str | None:
    return None if readme is None else _renderer().render(readme)
