"""The README is a front door: short, with every docs page linked, and no link in it or the
docs that leads nowhere."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#]+)(?:#[^)]*)?\)")


def test_the_readme_is_short_and_links_every_docs_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    linked = {Path(target) for target in LINK.findall(readme)}
    pages = {page.relative_to(REPO) for page in (REPO / "docs").glob("*.md")}
    assert pages <= linked, sorted(map(str, pages - linked))


def test_every_relative_link_leads_to_a_file():
    for page in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for target in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            assert (page.parent / target).exists(), f"{page.name}: {target}"
