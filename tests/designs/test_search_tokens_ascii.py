"""The tokeniser's fast path for ASCII (designs/search/tokens.py, ASCII_PART) splits words
exactly as the character loop it replaced for ASCII did: the loop is kept here as the
reference, and random text of ASCII and other scripts must give the same words from both.
A difference would change what an indexed design is found by."""

from __future__ import annotations

import random

import pytest

from designs.search.tokens import RUN, document_text, document_words, parse_query, split_run


def reference_kind(char: str) -> str:
    if char.isdigit():
        return "digit"
    return "upper" if char.isupper() else "lower"


def reference_split_run(run: str) -> list[tuple[int, int]]:
    parts: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(run)):
        before, here = reference_kind(run[i - 1]), reference_kind(run[i])
        boundary = (
            (before == "digit") != (here == "digit")
            or (before == "lower" and here == "upper")
            or (
                before == "upper"
                and here == "upper"
                and i + 1 < len(run)
                and reference_kind(run[i + 1]) == "lower"
            )
        )
        if boundary:
            parts.append((start, i))
            start = i
    parts.append((start, len(run)))
    return parts


def reference_document_words(text: str) -> list[str]:
    words: list[str] = []
    for match in RUN.finditer(text):
        run = match.group()
        if len(run) > 60:
            continue
        parts = reference_split_run(run)
        words.extend(run[start:end].lower() for start, end in parts)
        if len(parts) > 1:
            words.append(run.lower())
    return words


ASCII = "ABCXYZabcxyz0129" + "/-_. \n"
# Letters and digits whose case or digit rules are not ASCII's: accented and caseless
# letters, a titlecase letter, Greek sigmas (lowered by their neighbours), letters whose
# lowercase is longer (İ), digits of other scripts, superscripts, Roman numerals,
# fractions, a combining accent (not a letter), fullwidth forms, a ligature.
OTHER = "éÉßİıǅΣσςΩЖж中٣²Ⅻ½\u0301ＡｂＢ１ﬁ"


def random_text(rng: random.Random, alphabet: str) -> str:
    # Few separators now and then, so some runs pass MAX_WORD (60) and are left out.
    separators = rng.choice(["/-_. \n", "/", ""])
    letters = [c for c in alphabet if c not in "/-_. \n"]
    return "".join(
        rng.choice(separators) if separators and rng.random() < 0.15 else rng.choice(letters)
        for _ in range(rng.randrange(0, 140))
    )


@pytest.mark.parametrize("alphabet", [ASCII, ASCII + OTHER], ids=["ascii", "mixed"])
def test_random_text_gives_the_same_words_as_the_character_loop(alphabet):
    rng = random.Random(20261207)
    for _ in range(3000):
        text = random_text(rng, alphabet)
        expected = reference_document_words(text)
        assert document_words(text) == expected, text
        assert document_text(text) == " ".join(expected), text
        for run in RUN.findall(text):
            assert split_run(run) == reference_split_run(run), run


@pytest.mark.parametrize(
    "text",
    [
        "XMLFile",
        "aBCd",
        "ABc",
        "AB2c",
        "fooBARbaz",
        "HTTPServer2Go",
        "a1B2",
        "A",
        "Ab",
        "v2",
        "M3x12",
        "ΣΑΣ",
        "",
    ],
)
def test_the_cases_at_the_edges_of_the_rules_split_as_the_character_loop_does(text):
    assert document_words(text) == reference_document_words(text)
    assert document_text(text) == " ".join(reference_document_words(text))


def test_a_query_is_split_as_the_character_loop_splits_it():
    text = "suspensionArm XMLFile M3x12 ΣΑΣ ﬁnal HTTP2"
    expected = [tuple(run[s:e].lower() for s, e in reference_split_run(run)) for run in RUN.findall(text)]
    assert list(parse_query(text).terms) == expected
