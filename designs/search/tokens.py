"""The hub's own tokeniser: the same words for the document and the query, whatever the
database, so SQLite FTS5 and PostgreSQL full-text search find the same designs.

A word is a run of letters and digits; everything else separates words (`/ - _ .`,
spaces, punctuation). A run is split again where the case changes (`wishboneArm`,
`XMLFile`) and where letters meet digits (`v2`); all words are lowercase. A document
keeps each run's parts and, after them, the whole run (`wishbone arm wishbonearm`),
so "wishboneArm", "wishbone arm", "wishbonearm" and "arm" all find `wishboneArm.STL`.
A query word of several parts asks for its parts side by side (a phrase), which the
parts in the document always are.

No database and no Django here: the back-ends (designs/search/backends.py) take these
words, and the highlighter marks them in the original text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Letters and digits of any script; `_` is a separator like `-` and `.`.
RUN = re.compile(r"[^\W_]+")
# A longer "word" is a hash or a blob of base64, not something a person types.
MAX_WORD = 60


def _kind(char: str) -> str:
    if char.isdigit():
        return "digit"
    return "upper" if char.isupper() else "lower"


# The parts of a run of ASCII letters and digits, by split_run's rules in one regular
# expression: digits; capitals before a capitalised word (XML|File); a word of lowercase
# letters after at most one capital; capitals to the end of their letters. Most indexed
# text is ASCII (file paths above all), and split_run's loop over characters was most of
# the cost of tokenising it (tests/designs/test_search_tokens_ascii.py checks the two
# agree). Other scripts keep the loop: their case and digit rules are str's own.
ASCII_PART = re.compile(r"[0-9]+|[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")


def _ascii_run(run: str) -> bool:
    return run.isascii() and run.isalnum()


def split_run(run: str) -> list[tuple[int, int]]:
    """(start, end) of each part of one run of letters and digits."""
    if _ascii_run(run):
        return [match.span() for match in ASCII_PART.finditer(run)]
    parts: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(run)):
        before, here = _kind(run[i - 1]), _kind(run[i])
        boundary = (
            (before == "digit") != (here == "digit")
            or (before == "lower" and here == "upper")
            # The last capital of a run of capitals starts a new word: XML|File.
            or (before == "upper" and here == "upper" and i + 1 < len(run) and _kind(run[i + 1]) == "lower")
        )
        if boundary:
            parts.append((start, i))
            start = i
    parts.append((start, len(run)))
    return parts


def _words(text: str) -> list[str]:
    """`document_words` before lowering."""
    words: list[str] = []
    for run in RUN.findall(text):
        if len(run) > MAX_WORD:
            continue
        if _ascii_run(run):
            parts = ASCII_PART.findall(run)
        else:
            parts = [run[start:end] for start, end in split_run(run)]
        words += parts
        if len(parts) > 1:
            words.append(run)
    return words


def document_words(text: str) -> list[str]:
    """The words a document is indexed by, in order (see the module docstring)."""
    return [word.lower() for word in _words(text)]


def document_text(text: str) -> str:
    """`document_words` as the space-separated text the back-ends index."""
    if text.isascii():
        # ASCII lowers letter by letter: lowering the joined words once is lowering each.
        # Other scripts keep lowering word by word, as str.lower can look at a letter's
        # neighbours (a Greek capital sigma).
        return " ".join(_words(text)).lower()
    return " ".join(document_words(text))


@dataclass(frozen=True)
class Query:
    """A search, tokenised: every term must match; a term of several words is a phrase.

    `prefix`: the last word of the last term also matches longer words (the person may
    still be typing it)."""

    terms: tuple[tuple[str, ...], ...]
    prefix: bool

    def __bool__(self) -> bool:
        return bool(self.terms)

    def words(self) -> set[str]:
        return {word for term in self.terms for word in term}

    def last_word(self) -> str:
        return self.terms[-1][-1] if self.terms else ""


# More terms than this is not a search a person typed; the rest are ignored.
MAX_TERMS = 12


def parse_query(text: str) -> Query:
    """`text` as a Query, split by the document tokeniser's rules."""
    terms: list[tuple[str, ...]] = []
    for match in RUN.finditer(text):
        run = match.group()[:MAX_WORD]
        term = tuple(run[start:end].lower() for start, end in split_run(run))
        if term not in terms:
            terms.append(term)
    terms = terms[:MAX_TERMS]
    # Prefix matching only when the text ends inside a word: "arm " is the whole word.
    prefix = bool(terms) and bool(RUN.search(text[-1:]))
    # A one-letter or one-digit prefix would match half the index.
    if prefix and len(terms[-1][-1]) < 2:
        prefix = False
    return Query(terms=tuple(terms), prefix=prefix)


# -- highlighting -------------------------------------------------------------------------


def hit_spans(text: str, query: Query) -> list[tuple[int, int]]:
    """(start, end) of every word of `text` that `query` matches, in order, not
    overlapping: a one-word term wherever it is a word or part of one (the last term also
    as a prefix), a term of several words only where they stand side by side."""
    singles = {term[0] for term in query.terms if len(term) == 1}
    phrases = [term for term in query.terms if len(term) > 1]
    last = query.last_word() if query.prefix else ""
    # Most texts of a page hold none of the words: say so without splitting them.
    lowered = text.lower()
    if not any(word in lowered for word in singles) and not any(
        all(word in lowered for word in term) for term in phrases
    ):
        return []
    whole = singles | {"".join(term) for term in phrases}
    spans: list[tuple[int, int]] = []
    parts: list[tuple[str, int, int]] = []
    for match in RUN.finditer(text):
        run = match.group()
        if run.lower() in whole:
            spans.append(match.span())
        parts.extend(
            (run[start:end].lower(), match.start() + start, match.start() + end)
            for start, end in split_run(run)
        )
    prefix_single = bool(last) and len(query.terms[-1]) == 1
    for word, start, end in parts:
        if word in singles or (prefix_single and word.startswith(last)):
            spans.append((start, end))
    for term in phrases:
        prefix_here = bool(last) and term is query.terms[-1]
        for i in range(len(parts) - len(term) + 1):
            window = parts[i : i + len(term)]
            if all(part[0] == word for part, word in zip(window[:-1], term[:-1], strict=True)) and (
                window[-1][0] == term[-1] or (prefix_here and window[-1][0].startswith(term[-1]))
            ):
                spans.append((window[0][1], window[-1][2]))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def mark(text: str, spans: list[tuple[int, int]]) -> SafeString:
    """`text` escaped, with each span wrapped in <mark>: safe HTML whatever `text` holds."""
    out: list[str] = []
    at = 0
    for start, end in spans:
        out.append(escape(text[at:start]))
        out.append(f"<mark>{escape(text[start:end])}</mark>")
        at = end
    out.append(escape(text[at:]))
    return mark_safe("".join(out))  # every piece of `text` is escaped above


def _first_hit(text: str, query: Query) -> int | None:
    """Where the first hit of `query` in `text` starts, tokenising as little as it can: a
    page's snippets are cut from READMEs of thousands of words."""
    lowered = text.lower()
    for at in sorted({lowered.find(word) for word in query.words()} - {-1}):
        run = RUN.search(text, max(0, at - MAX_WORD))
        while run is not None and run.start() <= at:
            spans = hit_spans(run.group(), query)
            if spans:
                return run.start() + spans[0][0]
            run = RUN.search(text, run.end())
    # A word found inside a longer one at first: look through the whole text.
    spans = hit_spans(text, query)
    return spans[0][0] if spans else None


def snippet(text: str, query: Query, *, width: int = 180) -> SafeString:
    """Safe HTML: about `width` characters of `text` around its first hit, the hits marked;
    "" if no word of `query` is in `text`."""
    first = _first_hit(text, query)
    if first is None:
        return mark_safe("")
    start = max(0, first - width // 4)
    if start:
        # Start at a word's beginning.
        space = text.rfind(" ", 0, start + 1)
        start = space + 1 if space >= 0 and first - space < width // 2 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", first, end)
        end = space if space > first else end
    marked = mark(text[start:end], hit_spans(text[start:end], query))
    return mark_safe(("…" if start else "") + marked + ("…" if end < len(text) else ""))  # escaped by mark()


def matched_lines(text: str, query: Query, *, limit: int = 3) -> list[SafeString]:
    """Safe HTML of up to `limit` lines of `text` (file paths, one a line) with a hit marked."""
    found: list[SafeString] = []
    for line in text.splitlines():
        spans = hit_spans(line, query)
        if spans:
            found.append(mark(line, spans))
            if len(found) == limit:
                break
    return found
