"""The slicer comments are found as a search of the whole text finds them, though each
pattern is searched from near its words only: `^;\\s*` crosses line ends, so a comment
may begin lines before its words."""

from __future__ import annotations

import random

import pytest

from machines.printing import gcode
from machines.printing.gcode import metadata


def _whole_text_search(pattern, words, text):
    return pattern.search(text)


@pytest.mark.parametrize(
    ("text", "figures"),
    [
        # The reviewer's inputs, as the search of the whole text read them (and 9711bfb).
        (";\nestimated printing time (normal mode) = 1h 2m\n", (3720, None, None)),
        (";\t\n filament used [mm] = 1200.5\n", (None, 1200.5, None)),
        ("G1 X1\n;\n\n  \n estimated printing time = 5s\n", (5, None, None)),
        ("; x\n;\n total filament used [g] = 3.5\n", (None, None, 3.5)),
        (";\n\ntotal filament used [g] = 2.5\n", (None, None, 2.5)),
    ],
)
def test_a_comment_whose_words_are_lines_after_its_semicolon_is_found(text, figures):
    assert metadata(text) == figures


def _random_text(rng: random.Random) -> str:
    noise = [";", "\n", " ", "\t", "\x0b", "total ", "total", "x", "G1 X1", " = ", "1h 2m", "12.5", "TIME:"]
    words = [
        "estimated printing time",
        "estimated printing time (normal mode)",
        "filament used [mm]",
        "filament used [g]",
        ";TIME:",
        ";Filament used:",
    ]
    pieces = []
    for _ in range(rng.randint(1, 4)):
        pieces += [rng.choice(noise) for _ in range(rng.randint(0, 6))]
        # A comment, or a near one: the semicolon, whitespace across lines, "total ".
        pieces += [
            rng.choice(["\n;", "\n;", ";", "", "x;"]),
            *(rng.choice(" \t\n") for _ in range(rng.randint(0, 4))),
        ]
        pieces += [rng.choice(["", "", "total ", "total\n"]), rng.choice(words), rng.choice([" = ", "=", ""])]
        pieces += [rng.choice(["1h 2m", "12.5", "3.5, 1.0", "7", "x"]), rng.choice(["\n", "", "\n\n"])]
    return "".join(pieces)


def test_the_comments_found_are_those_a_search_of_the_whole_text_finds(monkeypatch):
    rng = random.Random(1812)
    texts = [_random_text(rng) for _ in range(20000)]
    found = [metadata(text) for text in texts]
    monkeypatch.setattr(gcode, "_search", _whole_text_search)
    assert found == [metadata(text) for text in texts]
    assert sum(figures != (None, None, None) for figures in found) > 2000  # the comments were there
