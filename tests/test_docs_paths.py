"""Docs that match the code: every repository path README.md and docs/*.md name exists (a module path
such as `label/bank.py` is looked up under src/dialpref/ too; globs must match something)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATH = re.compile(r"(?<![\w/.:-])((?:[\w*-]+/)+[\w*.-]+\.(?:py|jinja|yaml|md|json|png|toml))(?![\w/])")
# what a command writes or a user sets, not what the repository holds
OUTPUTS = ("runs/", "benchmarks/.cache/", "my_", "out/", "DIALPREF_HOME/")


def named_paths(text: str) -> set[str]:
    found = set()
    for line in text.splitlines():
        for match in PATH.finditer(line):
            path = match.group(1)
            start = line.rfind(" ", 0, match.start()) + 1
            if "://" in line[start:match.end()]:
                continue  # part of a URL
            if not path.startswith(OUTPUTS):
                found.add(path)
    return found


def exists(path: str) -> bool:
    """At the repository root, under src/, under the package, or under one of its subpackages (README's
    layout names `prompts/*.jinja` beside `label/`)."""
    package = ROOT / "src" / "dialpref"
    for base in (ROOT, ROOT / "src", package, *(d for d in package.iterdir() if d.is_dir())):
        if "*" in path and list(base.glob(path)):
            return True
        if (base / path).exists():
            return True
    return False


def test_every_path_the_docs_name_exists():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    missing = {f"{doc.name}: {path}" for doc in docs for path in named_paths(doc.read_text(encoding="utf-8"))
               if not exists(path)}
    assert missing == set()


def test_the_path_finder_sees_paths_and_skips_urls_and_outputs():
    text = "see `label/bank.py` and src/dialpref/cli/__init__.py, https://x.org/a/b.py, runs/dd/scores.json"
    assert named_paths(text) == {"label/bank.py", "src/dialpref/cli/__init__.py"}
    assert exists("label/bank.py") and exists("src/dialpref/label/prompts/*.jinja") and not exists("label/quick.py")
