from __future__ import annotations

import time

import pytest

from hub.markdown import render_markdown, resolve_repo_path


def render(text: str, base_dir: str = "") -> str:
    return render_markdown(
        text,
        raw_url=lambda path: f"/raw/{path}",
        page_url=lambda path: f"/page/{path}",
        base_dir=base_dir,
    )


def test_it_drops_script_tags_with_their_content():
    html = render("# Hi\n\n<script>alert('owned')</script>\n\nafter")
    assert "<script" not in html
    assert "alert" not in html
    assert "after" in html


def test_it_drops_style_elements_with_their_content():
    html = render("<style>body { display: none }</style>\n\ntext")
    assert "<style" not in html
    assert "display" not in html


def test_an_image_loses_its_onerror_handler():
    html = render("<img src=x onerror=alert(1)>")
    assert "onerror" not in html
    assert "alert" not in html
    assert '<img src="/raw/x">' in html


def test_event_handler_attributes_are_dropped_from_every_tag():
    html = render('<div onclick="steal()"><a href="https://example.org" onmouseover="steal()">x</a></div>')
    assert "steal" not in html
    assert "onclick" not in html and "onmouseover" not in html


def test_a_markdown_javascript_link_loses_its_href():
    html = render("[click](javascript:alert(1))")
    assert "javascript" not in html
    assert "href" not in html
    assert "click</a>" in html


@pytest.mark.parametrize(
    "href",
    [
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java&#9;script:alert(1)",
        "&#106;avascript:alert(1)",
        "vbscript:msgbox(1)",
        "data:text/html,<script>alert(1)</script>",
    ],
)
def test_a_raw_link_with_a_script_or_data_url_loses_its_href(href):
    html = render(f'<a href="{href}">x</a>')
    assert "href" not in html
    assert "script" not in html.lower()
    assert "data:" not in html


def test_a_data_url_image_loses_its_src():
    html = render("![pixel](data:image/png;base64,iVBORw0KGgo=)")
    assert "data:" not in html
    assert "src" not in html


@pytest.mark.parametrize(
    "markup",
    [
        '<iframe src="https://evil.example"></iframe>',
        '<object data="x.swf"></object>',
        '<embed src="x.swf">',
        '<form action="https://evil.example"><input name="password"></form>',
    ],
)
def test_frames_objects_and_forms_are_dropped(markup):
    html = render(f"before\n\n{markup}\n\nafter")
    for tag in ("<iframe", "<object", "<embed", "<form", "<input"):
        assert tag not in html
    assert "evil" not in html
    assert "before" in html and "after" in html


def test_style_attributes_and_comments_are_dropped():
    html = render('<p style="position: fixed; top: 0">hi</p>\n\n<!-- secret -->')
    assert "style" not in html
    assert "secret" not in html
    assert "<p>hi</p>" in html


def test_a_relative_image_points_at_the_raw_file():
    html = render('![Chassis](docs/chassis.png "The chassis")')
    assert '<img src="/raw/docs/chassis.png" alt="Chassis" title="The chassis">' in html


def test_a_relative_link_points_at_the_file_page_and_keeps_its_fragment():
    html = render("[assembly](docs/assembly.md#step-2)")
    assert 'href="/page/docs/assembly.md#step-2"' in html


def test_a_relative_link_drops_its_query_and_an_image_its_query_and_fragment():
    html = render("[a](a.md?plain=1#top) ![b](b.png?v=2#dark)")
    assert 'href="/page/a.md#top"' in html
    assert 'src="/raw/b.png"' in html


def test_relative_paths_resolve_against_the_readme_folder():
    html = render(
        "![up](../images/a.png) [same](./b.md) [plain](c/d.md) [folder](./)",
        base_dir="docs/guide",
    )
    assert 'src="/raw/docs/images/a.png"' in html
    assert 'href="/page/docs/guide/b.md"' in html
    assert 'href="/page/docs/guide/c/d.md"' in html
    assert 'href="/page/docs/guide"' in html


def test_a_leading_slash_means_the_repository_root():
    html = render("![logo](/img/logo.png) [licence](/LICENSE)", base_dir="docs")
    assert 'src="/raw/img/logo.png"' in html
    assert 'href="/page/LICENSE"' in html


@pytest.mark.parametrize(
    ("target", "base_dir"),
    [
        ("../../etc/passwd", ""),
        ("../x.png", ""),
        ("../../x.png", "docs"),
        ("/../x.png", "docs"),
        ("%2e%2e/x.png", ""),
    ],
)
def test_a_path_escaping_the_repository_loses_its_attribute(target, base_dir):
    html = render(f"![pic]({target}) [link]({target})", base_dir=base_dir)
    assert "src" not in html
    assert "href" not in html
    assert "passwd" not in html and "x.png" not in html


def test_absolute_http_https_mailto_and_scheme_relative_urls_are_kept():
    html = render(
        "![badge](https://img.example/badge.svg) [site](http://example.org/a?b=1#c) "
        "[mail](mailto:team@example.org) [cdn](//cdn.example/x)"
    )
    assert 'src="https://img.example/badge.svg"' in html
    assert 'href="http://example.org/a?b=1#c"' in html
    assert 'href="mailto:team@example.org"' in html
    assert 'href="//cdn.example/x"' in html


def test_a_url_with_an_unparsable_host_loses_its_attribute():
    html = render('<a href="//[oops">x</a> <img src="//[::1">')
    assert "href" not in html
    assert "src" not in html


def test_other_schemes_lose_their_attribute():
    html = render("[ssh](ssh://example.org) [file](file:///etc/passwd)")
    assert "href" not in html


def test_fragment_only_links_are_kept():
    html = render("[jump](#bill-of-materials)")
    assert 'href="#bill-of-materials"' in html


def test_links_open_without_referrer_or_ranking():
    html = render("[site](https://example.org)")
    assert 'rel="noopener noreferrer nofollow"' in html


def test_tables_are_rendered_with_their_alignment():
    html = render("| Part | Qty |\n|:-----|----:|\n| bolt | 4 |\n")
    assert "<table>" in html
    assert '<th align="left">Part</th>' in html
    assert '<td align="right">4</td>' in html


def test_fenced_code_keeps_only_its_language_class():
    html = render(
        '```python\nprint(\'<b>\')\n```\n\n<code class="btn language-c">x</code> <code class="btn">y</code>'
    )
    assert '<pre><code class="language-python">' in html
    assert "&lt;b&gt;" in html
    assert '<code class="language-c">x</code>' in html
    assert "<code>y</code>" in html


def test_details_summary_and_image_sizes_are_kept():
    html = render(
        "<details open><summary>Wiring</summary>\n\n"
        '<img src="wiring.png" alt="Wiring" width="300" height="200">\n\n</details>'
    )
    assert "<details open" in html
    assert "<summary>Wiring</summary>" in html
    assert '<img src="/raw/wiring.png" alt="Wiring" width="300" height="200">' in html


def test_a_centred_logo_keeps_its_alignment():
    html = render('<p align="center"><img src="logo.png" alt="Logo"></p>')
    assert '<p align="center"><img src="/raw/logo.png" alt="Logo"></p>' in html


def test_a_one_megabyte_readme_renders():
    section = (
        "## Module {n}\n\nSee [the guide](docs/{n}.md#top), ![photo](img/{n}.png) and "
        "<https://example.org/{n}>, with **bold** and `code`.\n\n"
        "| Part | Qty |\n|---|---:|\n| bolt | {n} |\n\n"
        "```\nsize = [{n}, {n}]\n```\n\n- one\n- two [x](x.md)\n\n"
    )
    text = "".join(section.format(n=n) for n in range(6000))
    assert len(text) > 1_000_000
    started = time.monotonic()
    html = render(text)
    # Generous: it takes about a second; this only catches quadratic behaviour.
    assert time.monotonic() - started < 30
    assert html.count("<h2>") == 6000
    assert 'href="/page/docs/5999.md#top"' in html
    assert 'src="/raw/img/5999.png"' in html


def test_lists_nested_hundreds_deep_are_shown_as_escaped_source_quickly():
    # Deeper than MAX_NESTING, the sanitiser's parser would slow down: the source is shown.
    text = "".join("    " * depth + "- <b>item</b>\n" for depth in range(400))
    started = time.perf_counter()
    html = render(text)
    assert time.perf_counter() - started < 1.0
    assert html.startswith("<pre>")
    assert "&lt;b&gt;item&lt;/b&gt;" in html and "<b>" not in html


def test_lists_nested_a_few_levels_deep_still_render():
    text = "".join("  " * depth + "- item\n" for depth in range(10))
    assert render(text).count("<ul>") == 10


def test_lone_surrogates_do_not_break_rendering():
    assert render("broken \ud800 text") == "<p>broken \ufffd text</p>"


@pytest.mark.parametrize(
    ("url_path", "base_dir", "expected"),
    [
        ("a.png", "", "a.png"),
        ("a%20b.png", "docs/", "docs/a b.png"),
        ("../a.png", "docs", "a.png"),
        ("/a.png", "docs", "a.png"),
        (".", "", ""),
        ("..", "", None),
        ("docs/../../a.png", "", None),
    ],
)
def test_repository_paths_are_resolved_decoded_and_kept_inside(url_path, base_dir, expected):
    assert resolve_repo_path(url_path, base_dir) == expected


@pytest.mark.django_db
def test_a_commit_renders_its_readme_before_anyone_asks(alice, client, background_tasks_run, monkeypatch):
    from designs import selectors
    from tests.factories import DesignFactory, commit_files

    design = DesignFactory(owner=alice, slug="warm")
    commit_files(design, {"README.md": "# Warm\n\nAlready **rendered**.\n"})
    # The page now finds it in the cache: rendering it again would fail here.
    monkeypatch.setattr(selectors, "render_markdown", lambda *a, **k: pytest.fail("rendered on a GET"))
    page = client.get("/alice/warm/").content.decode()
    assert "Already <strong>rendered</strong>" in page
