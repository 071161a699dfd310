"""The documentation: the README stays a short front door, the site in docs/ builds with
`mkdocs build --strict` (no broken link or anchor, no page left out of the nav), and the
screenshots exist and are shown."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SCREENSHOTS = ("viewer.png", "report.png")


def test_the_readme_is_under_200_lines():
    lines = README.read_text().splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines: move the detail into docs/"


def test_the_readme_starts_with_the_two_commands_and_links_only_to_files_that_exist():
    text = README.read_text()
    commands = text.index("## Two commands")
    assert text.index("make run") > commands
    assert text.index("make run") < text.index("make test") < text.index("## Where to go next")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert targets, "the README links to no page"
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
    assert "../" not in "".join(targets), "the README points outside the repository"


def test_the_docs_point_at_nothing_outside_the_repository():
    offenders = [
        str(path.relative_to(ROOT))
        for path in [README, *sorted((ROOT / "docs").rglob("*.md")), ROOT / "bench" / "RESULTS.md"]
        if "../shared" in path.read_text()
    ]
    assert not offenders, offenders


def test_the_screenshots_exist_and_the_readme_and_docs_show_them():
    for name in SCREENSHOTS:
        png = ROOT / "docs" / "img" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
        assert f"](docs/img/{name})" in README.read_text(), f"README.md does not show {name}"
        assert f"](img/{name})" in (ROOT / "docs" / "index.md").read_text(), name


def test_the_site_builds_with_strict(tmp_path):
    """Any warning (a link to a missing page or anchor, a page not in the nav, a snippet that
    is not there) fails a strict build."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    benchmarks = (tmp_path / "site" / "benchmarks" / "index.html").read_text()
    assert "Benchmark results" in benchmarks, "bench/RESULTS.md is not shown on the site"
    assert "--8&lt;--" not in benchmarks, "the snippet was not replaced"
    for page in ("getting-started", "design", "ingest", "review", "api", "testing"):
        assert (tmp_path / "site" / page / "index.html").exists(), page
