"""The console's Markdown renderer (console-markdown.js) under node with a minimal DOM: what a model writes
becomes elements whose text is text, links are http(s) only, and hostile shapes end quickly."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HARNESS = Path(__file__).with_name("markdown_harness.mjs")
RENDERER = Path(__file__).parents[3] / "runtime" / "http" / "static" / "console-markdown.js"


def render(*texts: str) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node, "node is installed by scripts/setup.sh"
    result = subprocess.run([node, str(HARNESS), str(RENDERER)], input=json.dumps(texts), capture_output=True,
                            text=True, timeout=30, check=True)  # fmt: skip
    trees: list[dict[str, Any]] = json.loads(result.stdout)
    return trees


def walk(tree: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield tree
    for child in tree["children"]:
        yield from walk(child)


def tags(tree: dict[str, Any]) -> list[str]:
    return [node["tag"] for node in walk(tree)]


def text(tree: dict[str, Any]) -> str:
    return str(tree["text"]) + "".join(text(child) for child in tree["children"])


def test_the_usual_shapes() -> None:
    (tree,) = render(
        "# Title\n\nSome **bold**, *it* and `code`.\n\n```python\nprint(1)\n```\n- a\n- b\n1. one\n> quoted"
    )
    assert [t for t in tags(tree) if not t.startswith("#")] == [
        "h3", "p", "strong", "em", "code", "pre", "code", "ul", "li", "li", "ol", "li", "blockquote", "p"]  # fmt: skip
    code = next(node for node in walk(tree) if node["tag"] == "code" and node["attributes"])
    assert (code["text"], code["attributes"]["language"]) == ("print(1)", "python")


def test_markup_from_the_model_stays_text() -> None:
    hostile = "<script>alert(1)</script> <img src=x onerror=alert(1)> <b>bold?</b>"
    (tree,) = render(hostile)
    assert set(tags(tree)) == {"#fragment", "p", "#text"}
    assert text(tree) == hostile


def test_links_are_http_or_https_only() -> None:
    (tree,) = render("[ok](https://example.com/a) [js](javascript:alert(1)) [data](data:text/html,x) [rel](/v1/x)")
    links = [node for node in walk(tree) if node["tag"] == "a"]
    assert [link["attributes"]["href"] for link in links] == ["https://example.com/a"]
    assert links[0]["attributes"]["rel"] == "noopener noreferrer nofollow"
    assert "[js](javascript:alert(1))" in text(tree)


def test_hostile_shapes_end_and_keep_their_text() -> None:
    deep = ">" * 3000 + " deep"
    wide = "[" * 30_000 + "x"
    unclosed = "```\nnever closed\n" * 100
    trees = render(deep, wide, unclosed)
    assert tags(trees[0]).count("blockquote") == 8
    assert text(trees[0]).endswith("deep")
    assert text(trees[1]) == wide
    assert "never closed" in text(trees[2])


@pytest.mark.parametrize("value", ["", "\n\n\n", "   ", "-", "#", "```", ">", "1."])
def test_degenerate_input(value: str) -> None:
    render(value)
