"""Rendering 50,000 characters of pathological Markdown: the hub's renderer
(hub.markdown: cmark-gfm + nh3) against Python-Markdown, the renderer it replaced,
measured in the same run on the same inputs.

Each input is rendered three times and the best time kept. The baseline runs in a child
process with a time limit, because some inputs take it minutes. The hub's goal: every
input in at most 100 ms on this machine (issue 12, "Markdown that cannot stall a worker").
"""

from __future__ import annotations

import multiprocessing
import time

from _django import setup

CHARS = 50_000
GOAL_MS = 100.0
BASELINE_LIMIT_S = 20.0


def inputs() -> dict[str, str]:
    n = CHARS
    return {
        "unclosed [": "[" * n,
        "unclosed ![": "![" * (n // 2),
        "emphasis runs": "*a " * (n // 3),
        "underscores": "_" * n,
        "mixed openers": "**[_`" * (n // 5),
        "nested lists": "".join("  " * (i % 400) + "- x\n" for i in range(n // 420)),
        "nested quotes": ">" * n,
        "long table": "| a | b |\n|---|---|\n" + "| x | y |\n" * (n // 10),
        "wide table": "|a" * (n // 6) + "|\n" + "|-" * (n // 6) + "|\n" + "|x" * (n // 6) + "|\n",
        "many links": "[a](http://x) " * (n // 14),
        "link definitions": "[x]: /u\n" * (n // 10) + "[x] " * (n // 40),
        "unclosed <a": "<a " * (n // 3),
        "unclosed <div>": "<div>" * (n // 5),
        "unclosed CDATA": "<![CDATA[" * (n // 9),
        "backticks": "`" * n,
    }


def best_ms(render, text: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        render(text)
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def _baseline_child(text: str, answer) -> None:
    import markdown
    from markdown.extensions.tables import TableExtension

    def render(source: str) -> str:
        return markdown.markdown(
            source, extensions=[TableExtension(use_align_attribute=True), "fenced_code", "sane_lists"]
        )

    try:
        answer.put(best_ms(render, text, runs=1))
    except RecursionError:
        answer.put(-1.0)


def baseline_ms(text: str) -> float | None:
    """Python-Markdown's time, None if over BASELINE_LIMIT_S, -1 if it crashed."""
    answer: multiprocessing.Queue = multiprocessing.Queue()
    child = multiprocessing.Process(target=_baseline_child, args=(text, answer))
    child.start()
    child.join(BASELINE_LIMIT_S)
    if child.is_alive():
        child.kill()
        child.join()
        return None
    return answer.get()


def main() -> None:
    setup()
    from hub.markdown import RENDERER_VERSION, render_markdown

    print(f"Markdown, {CHARS:,} characters per input; hub = {RENDERER_VERSION} + nh3")
    print(f"{'input':18} {'hub ms':>9} {'Python-Markdown ms':>19} {'ratio':>8}  goal ≤ {GOAL_MS:.0f} ms")
    worst = 0.0
    for name, text in inputs().items():
        hub = best_ms(render_markdown, text)
        worst = max(worst, hub)
        base = baseline_ms(text)
        if base is None:
            base_text, ratio = f"> {BASELINE_LIMIT_S * 1000:,.0f}", f"< {hub / (BASELINE_LIMIT_S * 1000):.4f}"
        elif base < 0:
            base_text, ratio = "crashed", "—"
        else:
            base_text, ratio = f"{base:,.1f}", f"{hub / base:.3f}"
        verdict = "ok" if hub <= GOAL_MS else "OVER"
        print(f"{name:18} {hub:9.1f} {base_text:>19} {ratio:>8}  {verdict}")
    print(f"slowest hub input: {worst:.1f} ms ({'within' if worst <= GOAL_MS else 'OVER'} the goal)")


if __name__ == "__main__":
    main()
