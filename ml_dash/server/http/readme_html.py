"""Experiment readmes as HTML: CommonMark (plus tables and strikethrough) rendered by markdown-it-py.

Raw HTML in a readme is disabled, so ``<script>`` or ``<img onerror=...>`` come out as text, and markdown-it's link
check refuses ``javascript:``/``vbscript:``/``file:`` URLs. The dashboard still copies the answer into the page
through an allow-list of elements and attributes (``static/js/markdown.js``): the server's output is not trusted on
its own either.

Rendering costs ~12 µs a character (a readme of ``MAX_README_CHARS`` about a second), so a rendering is kept, keyed
by the readme's SHA-256, in a cache bounded by the characters it holds: the experiment page of a running experiment,
and ten aliases of one readme in a query, render it once. It runs where the resolver runs, on a GraphQL worker thread,
never on the server's loop; GraphQL prices it by the readme's size (``graphql_cost.README_HTML_CHARS_PER_COST``).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from functools import lru_cache

from markdown_it import MarkdownIt

CACHE_CHARS = 32 * 1024 * 1024  # renderings kept, in characters of HTML

_cache: OrderedDict[bytes, str] = OrderedDict()
_cache_chars = 0
_lock = threading.Lock()
renders = 0  # renderings made (not answered from the cache): tests observe the cache through it


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def readme_html(readme: str | None) -> str | None:
    global _cache_chars, renders
    if readme is None:
        return None
    key = hashlib.sha256(readme.encode("utf-8", "surrogatepass")).digest()
    with _lock:
        html = _cache.get(key)
        if html is not None:
            _cache.move_to_end(key)
            return html
    html = _renderer().render(readme)  # outside the lock: other threads' readmes are not held up
    with _lock:
        renders += 1
        if key not in _cache and len(html) <= CACHE_CHARS:
            _cache[key] = html
            _cache_chars += len(html)
            while _cache_chars > CACHE_CHARS:
                _cache_chars -= len(_cache.popitem(last=False)[1])
    return html
