"""Every relative link in README.md and docs/*.md leads somewhere: the file exists, and a `#anchor` names a heading of
it as GitHub makes anchors (lower case, punctuation but `-` and `_` dropped, spaces as `-`, `-1`, `-2` for repeats).
The README's summaries link into docs/guide.md by anchor, so a renamed heading there must fail here."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(page: Path) -> set[str]:
    found, seen = set(), {}
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if not heading:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1).strip())  # a link keeps its words
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def links(page: Path) -> list[str]:
    return [m.group(1) for m in re.finditer(r"\]\(([^)\s]+)\)", FENCE.sub("", page.read_text(encoding="utf-8")))
            if not re.match(r"[a-z][a-z0-9+.-]*:", m.group(1))]  # http:, https:, mailto: are not ours to check


def test_the_anchor_rule_is_githubs():
    page = ROOT / "README.md"
    assert "reliability-details-docsreliabilitymd" in anchors(page)  # `### Reliability (details: [`docs/…`](…))`
    assert "shapes-what-nngru-really-returns" in anchors(page)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_has_its_file_and_heading(page):
    broken = []
    for link in links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading with that anchor in {target.name}")
    assert not broken, broken
