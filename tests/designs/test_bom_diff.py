from __future__ import annotations

import pytest

from designs.bom import MAX_ROWS, BomParseError, diff_bom, is_bom_path

OLD = "part,qty,material\nbolt,4,steel\nbracket,2,PETG\nwasher,8,steel\n"


def by_key(text_old: str, text_new: str) -> dict:
    return {change.key: change for change in diff_bom(text_old, text_new).changes}


def test_every_csv_file_is_a_bom_candidate():
    assert is_bom_path("bom.csv")
    assert is_bom_path("electronics/Parts.CSV")
    assert is_bom_path("cut-list.csv")
    assert not is_bom_path("bom.xlsx")
    assert not is_bom_path("README.md")


def test_identical_and_reordered_files_have_no_changes():
    reordered = "part,qty,material\nwasher,8,steel\nbolt,4,steel\nbracket,2,PETG\n"
    assert diff_bom(OLD, OLD).changes == []
    assert diff_bom(OLD, reordered).changes == []


def test_it_reports_an_added_row_with_its_quantity():
    diff = diff_bom(OLD, OLD + "nut,6,steel\n")
    (change,) = diff.changes
    assert change.kind == "added"
    assert change.key == "nut"
    assert change.old is None
    assert change.new == {"part": "nut", "qty": "6", "material": "steel"}
    assert change.quantity_delta == 6
    assert (diff.added, diff.removed, diff.changed) == (1, 0, 0)


def test_it_reports_a_removed_row_with_a_negative_quantity():
    diff = diff_bom(OLD, "part,qty,material\nbolt,4,steel\nwasher,8,steel\n")
    (change,) = diff.changes
    assert (change.kind, change.key, change.new) == ("removed", "bracket", None)
    assert change.old == {"part": "bracket", "qty": "2", "material": "PETG"}
    assert change.quantity_delta == -2
    assert (diff.added, diff.removed, diff.changed) == (0, 1, 0)


def test_a_quantity_change_is_one_changed_row_with_its_delta():
    changes = by_key(OLD, OLD.replace("bolt,4", "bolt,6"))
    assert list(changes) == ["bolt"]
    bolt = changes["bolt"]
    assert bolt.kind == "changed"
    assert bolt.quantity_delta == 2
    assert bolt.changed_fields == ["qty"]


def test_a_change_to_another_field_is_reported_with_a_zero_quantity_delta():
    bracket = by_key(OLD, OLD.replace("bracket,2,PETG", "bracket,2,ASA"))["bracket"]
    assert bracket.kind == "changed"
    assert bracket.changed_fields == ["material"]
    assert bracket.quantity_delta == 0
    assert bracket.old["material"] == "PETG" and bracket.new["material"] == "ASA"


def test_quantities_written_differently_but_equal_are_not_a_change():
    assert diff_bom("part,qty\nbolt,2\n", "part,qty\nbolt,2.0\n").changes == []


def test_decimal_commas_and_points_are_both_quantities():
    changes = by_key("part;qty\nwire;1,5\n", "part;qty\nwire;2.25\n")
    assert changes["wire"].quantity_delta == pytest.approx(0.75)


def test_an_unreadable_quantity_gives_no_delta_but_still_a_change():
    wire = by_key("part,qty\nwire,2 m\n", "part,qty\nwire,3 m\n")["wire"]
    assert wire.changed_fields == ["qty"]
    assert wire.quantity_delta is None


def test_it_reads_a_semicolon_separated_file():
    diff = diff_bom("Part;Qty\nbolt;4\n", "Part;Qty\nbolt;5\nnut;1\n")
    assert diff.key_column == "Part"
    assert diff.quantity_column == "Qty"
    assert {c.key: c.kind for c in diff.changes} == {"bolt": "changed", "nut": "added"}


def test_it_reads_a_tab_separated_file():
    diff = diff_bom("part\tqty\nbolt\t4\n", "part\tqty\nbolt\t5\n")
    assert diff.changes[0].quantity_delta == 1


def test_a_utf8_byte_order_mark_does_not_hide_the_first_column():
    diff = diff_bom("\ufeffpart,qty\nbolt,4\n", "\ufeffpart,qty\nbolt,5\n")
    assert diff.key_column == "part"
    assert diff.changes[0].key == "bolt"


def test_column_names_match_ignoring_case_and_spaces_and_keep_the_new_spelling():
    diff = diff_bom("PART , Qty\nbolt,4\n", "part,  QTY  \nbolt,5\n")
    assert diff.key_column == "part"
    assert diff.quantity_column == "QTY"
    assert diff.changes[0].old == {"part": "bolt", "QTY": "4"}


def test_a_file_without_a_quantity_column_still_diffs_its_rows():
    diff = diff_bom("reference,value\nR1,10k\nR2,1k\n", "reference,value\nR1,4k7\nC1,100n\n")
    assert diff.key_column == "reference"
    assert diff.quantity_column is None
    changes = {c.key: c for c in diff.changes}
    assert changes["R1"].kind == "changed" and changes["R1"].changed_fields == ["value"]
    assert changes["R1"].quantity_delta is None
    assert changes["C1"].kind == "added" and changes["C1"].quantity_delta is None
    assert changes["R2"].kind == "removed"


def test_the_key_column_follows_the_preference_order_not_the_file_order():
    diff = diff_bom(
        "item,reference,part,qty\n1,R1,resistor,2\n", "item,reference,part,qty\n1,R1,resistor,3\n"
    )
    assert diff.key_column == "part"


def test_without_a_known_key_the_first_column_other_than_quantity_is_the_key():
    diff = diff_bom("qty,colour,size\n2,red,M5\n", "qty,colour,size\n3,red,M5\n")
    assert diff.key_column == "colour"
    assert diff.quantity_column == "qty"


def test_repeated_keys_stay_separate_rows_matched_in_order():
    old = "part,qty,note\nbolt,4,front\nbolt,2,rear\n"
    new = "part,qty,note\nbolt,4,front\nbolt,3,rear\nbolt,1,spare\n"
    changes = by_key(old, new)
    assert set(changes) == {"bolt (2)", "bolt (3)"}
    assert changes["bolt (2)"].kind == "changed" and changes["bolt (2)"].quantity_delta == 1
    assert changes["bolt (3)"].kind == "added" and changes["bolt (3)"].new["note"] == "spare"


def test_a_column_added_in_the_new_version_shows_where_it_has_values():
    changes = by_key("part,qty\nbolt,4\nnut,4\n", "part,qty,supplier\nbolt,4,Acme\nnut,4,\n")
    assert list(changes) == ["bolt"]
    assert changes["bolt"].changed_fields == ["supplier"]


def test_a_missing_version_makes_every_row_added_or_removed():
    created = diff_bom("", "part,qty\nbolt,4\n")
    assert [(c.kind, c.key, c.quantity_delta) for c in created.changes] == [("added", "bolt", 4)]
    deleted = diff_bom("part,qty\nbolt,4\n", "")
    assert [(c.kind, c.key, c.quantity_delta) for c in deleted.changes] == [("removed", "bolt", -4)]


def test_a_header_only_file_has_no_rows():
    diff = diff_bom("part,qty\n", "part,qty\nbolt,4\n")
    assert diff.key_column == "part"
    assert [(c.kind, c.key) for c in diff.changes] == [("added", "bolt")]
    assert diff_bom("part,qty\n", "part,qty\n").changes == []


def test_blank_lines_short_rows_and_trailing_empty_columns_are_tolerated():
    diff = diff_bom("\npart,qty,note,,\nbolt,4\n\n", "part,qty,note\nbolt,4,,,\n")
    assert diff.changes == []


def test_changes_follow_the_new_order_then_removed_rows_in_the_old_order():
    diff = diff_bom("part,qty\na,1\nb,1\nc,1\nd,1\n", "part,qty\nz,1\nc,2\ny,1\n")
    assert [(c.kind, c.key) for c in diff.changes] == [
        ("added", "z"),
        ("changed", "c"),
        ("added", "y"),
        ("removed", "a"),
        ("removed", "b"),
        ("removed", "d"),
    ]


@pytest.mark.parametrize(
    "garbage",
    [
        "Just some prose about the design.\nIt is not a table at all.\n",
        '{"parts": [1, 2, 3], "qty": 4}',
        "R1,10k,2\nR2,1k,4\n",
        "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        'part,qty\n"unterminated,4\n',
        "part,qty\nbolt,4,steel,extra\n",
        ",,,\n",
    ],
)
def test_text_that_is_not_csv_with_a_header_row_raises_a_readable_error(garbage):
    with pytest.raises(BomParseError) as raised:
        diff_bom(garbage, "part,qty\nbolt,4\n")
    assert "old version" in str(raised.value)


def test_a_too_long_row_names_its_line():
    with pytest.raises(BomParseError, match="Line 3 of the new version"):
        diff_bom("part,qty\n", "part,qty\nbolt,4\nnut,4,steel\n")


def test_two_empty_versions_raise():
    with pytest.raises(BomParseError, match="Neither version"):
        diff_bom("", "  \n")


def test_versions_without_a_shared_column_raise():
    with pytest.raises(BomParseError, match="no column in common"):
        diff_bom("part,qty\nbolt,4\n", "sku,count\nB-1,4\n")


def test_more_than_the_row_limit_raises_too_many_rows():
    rows = "".join(f"p{n},1\n" for n in range(MAX_ROWS + 1))
    with pytest.raises(BomParseError, match="too many rows"):
        diff_bom("part,qty\n", "part,qty\n" + rows)


def test_exactly_the_row_limit_is_accepted():
    rows = "".join(f"p{n},1\n" for n in range(MAX_ROWS))
    diff = diff_bom("part,qty\n", "part,qty\n" + rows)
    assert diff.added == MAX_ROWS
