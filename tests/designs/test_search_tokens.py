"""The hub's own tokeniser (designs/search/tokens.py): both search back-ends index and
query exactly these words, so they agree on what a file name is made of."""

from __future__ import annotations

from designs.search.tokens import document_words, hit_spans, mark, matched_lines, parse_query, snippet


def test_a_path_is_split_on_slashes_dashes_underscores_and_dots():
    assert document_words("chassis/suspension-arm_v2.stl") == [
        "chassis",
        "suspension",
        "arm",
        "v",
        "2",
        "v2",
        "stl",
    ]


def test_case_changes_split_a_word_and_the_whole_word_is_kept_lowercase():
    assert document_words("wishboneArm.STL") == ["wishbone", "arm", "wishbonearm", "stl"]


def test_a_run_of_capitals_ends_where_the_next_word_starts():
    assert document_words("XMLFile") == ["xml", "file", "xmlfile"]


def test_letters_and_digits_are_split_apart():
    assert document_words("M3x12") == ["m", "3", "x", "12", "m3x12"]


def test_letters_of_other_scripts_are_words_too():
    assert document_words("Gehäuse_Deckel") == ["gehäuse", "deckel"]


def test_a_hash_length_run_is_not_a_word():
    assert document_words("a" * 61 + " ok") == ["ok"]


def test_a_query_word_of_several_parts_is_a_phrase_of_them():
    query = parse_query("wishboneArm v2")
    assert query.terms == (("wishbone", "arm"), ("v", "2"))


def test_a_query_splits_on_the_same_separators_as_a_document():
    assert parse_query("suspension-arm_v2").terms == (("suspension",), ("arm",), ("v", "2"))


def test_the_last_word_is_a_prefix_while_the_person_is_still_typing_it():
    assert parse_query("wish").prefix
    assert not parse_query("wish ").prefix


def test_a_one_letter_last_word_is_not_a_prefix():
    assert not parse_query("arm v").prefix


def test_a_query_of_punctuation_only_is_empty():
    assert not parse_query("-- / .")


def test_hits_are_found_inside_a_file_name():
    text = "parts/wishboneArm.STL"
    spans = hit_spans(text, parse_query("wishbone "))
    assert [text[s:e] for s, e in spans] == ["wishbone"]


def test_the_whole_compound_word_is_a_hit_for_its_lowercase_form():
    text = "wishboneArm.STL"
    spans = hit_spans(text, parse_query("wishbonearm "))
    assert [text[s:e] for s, e in spans] == ["wishboneArm"]


def test_the_prefix_word_marks_the_longer_word_it_starts():
    text = "suspension parts"
    assert [text[s:e] for s, e in hit_spans(text, parse_query("susp"))] == ["suspension"]


def test_marking_escapes_everything_then_marks_the_hits():
    text = '<script>alert("arm")</script> arm'
    html = mark(text, hit_spans(text, parse_query("arm ")))
    assert "<script>" not in html
    assert html == ("&lt;script&gt;alert(&quot;<mark>arm</mark>&quot;)&lt;/script&gt; <mark>arm</mark>")


def test_a_snippet_is_a_window_around_the_first_hit():
    text = ("filler " * 60) + "the wishbone holds the wheel " + ("tail " * 60)
    html = snippet(text, parse_query("wishbone "))
    assert "<mark>wishbone</mark>" in html
    assert html.startswith("…") and html.endswith("…")
    assert len(html) < 260


def test_no_hit_no_snippet():
    assert snippet("nothing here", parse_query("wishbone")) == ""


def test_matched_lines_lists_the_paths_with_a_hit():
    paths = "README.md\nparts/wishbone-arm.stl\nparts/hub.stl\nspare/wishbone.step"
    assert matched_lines(paths, parse_query("wishbone ")) == [
        "parts/<mark>wishbone</mark>-arm.stl",
        "spare/<mark>wishbone</mark>.step",
    ]


def test_a_phrase_is_marked_only_where_its_words_stand_side_by_side():
    text = "parts/arm_v2.stl\nparts/v1/2.stl\nnotes_v3.txt"
    assert matched_lines(text, parse_query("v2 ")) == ["parts/arm_<mark>v2</mark>.stl"]


def test_a_camel_case_query_marks_the_words_of_a_dashed_name():
    text = "wishbone-arm.stl"
    spans = hit_spans(text, parse_query("wishboneArm "))
    assert [text[s:e] for s, e in spans] == ["wishbone-arm"]
