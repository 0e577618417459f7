"""The documentation: README.md stays short, and every relative link in README.md and docs/**/*.md
resolves to a file in the repository."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_MAX_CHARS = 15_000

# [text](target) and ![alt](target); the target ends at whitespace or ")" (an optional "title" may follow)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")


def markdown_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def links(text):
    """Every link target of a markdown text, outside code blocks and code spans."""
    text = CODE.sub("", FENCE.sub("", text))
    return LINK.findall(text)


def broken_links(path):
    """(line-less) "file: target" for each relative link of `path` that names no file."""
    broken = []
    for target in links(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http(s), mailto, ...; an anchor in the same file
        rel = target.split("#", 1)[0].split("?", 1)[0]
        resolved = (path.parent / rel).resolve()
        if not resolved.exists() or not resolved.is_relative_to(ROOT):
            broken.append(f"{path.relative_to(ROOT)}: ({target})")
    return broken


def test_link_parser():
    text = ("[a](x.md) ![b](img/y.png) [c](https://e.org) [d](#top) [e](z.md#part) `[f](no.md)`\n"
            "```\n[g](no2.md)\n```\n")
    assert links(text) == ["x.md", "img/y.png", "https://e.org", "#top", "z.md#part"]


def test_every_relative_link_resolves():
    files = markdown_files()
    assert len(files) > 1
    broken = [b for f in files for b in broken_links(f)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_is_short():
    n = len((ROOT / "README.md").read_text(encoding="utf-8"))
    assert n <= README_MAX_CHARS, f"README.md has {n} characters, more than {README_MAX_CHARS}"
