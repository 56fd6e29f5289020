"""The README and docs/ stay true: links resolve, shown commands exist, the README stays short,
and provenance (commit hashes) lives in generated blocks, never in prose."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
GENERATED = re.compile(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
HASH = re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")
# `edgedistill CMD` at the start of a shell command (after a path, env assignments or a separator),
# not the word in a sentence such as "another edgedistill process".
COMMAND = re.compile(r"(?:^|[;&|(]\s*)(?:[A-Z_]+=\S+\s+)*(?:\S*/)?edgedistill[ \t]+([a-z][a-z0-9-]*)", re.M)


def _cli():
    from edgedistill_cli import commands

    return commands


def without_code(text: str) -> str:
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation other than - and _ dropped, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)     # a link in a heading counts by its text
    text = re.sub(r"[^\w\- ]", "", text.replace("`", "").lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def broken_links(page: Path) -> list[str]:
    """Every relative link of ``page`` whose file, or whose heading anchor in a Markdown file, is missing."""
    text = page.read_text()
    bad = []
    for target in LINK.findall(without_code(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):       # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{page.name}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            bad.append(f"{page.name}: {target} (no heading with that anchor in {dest.name})")
    return bad


def commands_shown(text: str, fenced_only: bool) -> set[str]:
    spans = [m.group(0) for m in FENCE.finditer(text)]
    if not fenced_only:
        spans += [m.group(0).strip("`") for m in INLINE_CODE.finditer(FENCE.sub("", text))]
    return {cmd for span in spans for cmd in COMMAND.findall(span)}


def hashes_in_prose(text: str) -> list[str]:
    prose = without_code(GENERATED.sub("", text))
    prose = LINK.sub(lambda m: m.group(0).split("](")[0], prose)     # link targets are addresses, not prose
    return HASH.findall(prose)


# --- the checks on the real pages ---------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_the_readme_is_short():
    lines = README.read_text().count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_commit_hash_in_prose(page):
    assert hashes_in_prose(page.read_text()) == [], "provenance belongs in the result files and generated blocks"


def test_every_command_shown_is_registered():
    registry = set(_cli().STAGES)
    shown = set().union(*(commands_shown(p.read_text(), fenced_only=False) for p in PAGES))
    assert shown, "no edgedistill command found in the docs: the pattern no longer matches"
    assert shown - registry == set()


def _help_exit_code(cmd: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            _cli().main([cmd, "--help"])
        except SystemExit as exc:
            return exc.code or 0
    return 0


@pytest.mark.parametrize("cmd", sorted(commands_shown(README.read_text(), fenced_only=True)))
def test_each_readme_command_answers_help(cmd):
    if cmd not in _cli().STAGES:
        pytest.fail(f"README shows `edgedistill {cmd}`, which the CLI does not have "
                    f"(it has: {', '.join(_cli().STAGES)})")
    assert _help_exit_code(cmd) == 0


# --- each check catches what it is for ----------------------------------------------------------

def test_the_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## Set-up: `make` it, fast\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/a.md) [ok](docs/a.md#set-up-make-it-fast) [web](https://example.org/x)\n"
                    "`[not a link](nowhere.md)`\n[gone](docs/b.md) [bad](docs/a.md#setup)\n")
    assert broken_links(page) == ["README.md: docs/b.md (no such file)",
                                  "README.md: docs/a.md#setup (no heading with that anchor in a.md)"]


def test_slugs_follow_githubs_rule():
    assert slug("Results: `hate-speech`") == "results-hate-speech"
    assert slug("INT8 that keeps its accuracy: which block loses it, and the repair") == \
        "int8-that-keeps-its-accuracy-which-block-loses-it-and-the-repair"
    assert anchors("# Notes\n## Notes\n```\n# not a heading\n```\n") == {"notes", "notes-1"}


def test_the_command_pattern_finds_commands_not_words():
    text = ("```bash\n.venv-slim/bin/edgedistill bench --bundle B\nX=1 edgedistill run r.yaml\n```\n"
            "`edgedistill layers RECIPE` and `another edgedistill process` and edgedistill train in prose\n")
    assert commands_shown(text, fenced_only=True) == {"bench", "run"}
    assert commands_shown(text, fenced_only=False) == {"bench", "run", "layers"}


def test_an_unknown_command_fails_help():
    assert _help_exit_code("no-such-command") != 0


def test_the_hash_check_finds_hashes_in_prose_only():
    text = ("Trained at 60e0d7c, see 1044307ab.\n`294d73b` in code\n```\nd68a383\n```\n"
            "<!-- results:start -->\ncommit 8d407c8\n<!-- results:end -->\n"
            "[a link](https://github.com/x/y/commit/6a7860f) 2,000 labels, 19826 texts, a defaced wall\n")
    assert hashes_in_prose(text) == ["60e0d7c", "1044307ab"]


# --- the headline block ------------------------------------------------------------------------

def test_the_headline_block_comes_from_the_result_files(tmp_path):
    import json

    from test_dashboard import RUN, write_results

    from tools.readme_results import HEADLINE_END, HEADLINE_START, main

    root = write_results(tmp_path / "results")
    metrics = json.loads((root / RUN / "metrics.json").read_text())
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{HEADLINE_START}\nold\n{HEADLINE_END}\noutro\n")
    assert main(["--run", RUN, "--results", str(root), "--section", "headline", "--write", str(readme)]) == 0
    text = readme.read_text()
    block = text.split(HEADLINE_START)[1].split(HEADLINE_END)[0]
    assert "old" not in block and text.startswith("intro\n") and text.endswith("outro\n")
    teacher = metrics["models"]["teacher"]["test"]["macro_f1"]
    for name, entry in metrics["models"].items():
        f1 = entry["test"]["macro_f1"]
        assert f"| {name} | {f1:.4f} | {100 * f1 / teacher:.1f} |" in block
    assert "Generated by `python -m tools.readme_results" in block and "commit `" in block
    assert f"![latency and size vs macro-F1 of every artifact](results/{RUN}/tradeoff.png)" in block
    assert (root / RUN / "tradeoff.png").stat().st_size > 1000


def test_the_results_block_gives_int8_changes_in_points(tmp_path):
    import json

    from test_dashboard import RUN, write_results

    from tools.readme_results import END, START, main

    root = write_results(tmp_path / "results")
    export = json.loads((root / RUN / "export.json").read_text())
    deltas = [a["macro_f1_delta"] for a in export["artifacts"] if a["precision"] == "int8"]
    doc = tmp_path / "results.md"
    doc.write_text(f"{START}\n{END}\n")
    assert main(["--run", RUN, "--results", str(root), "--write", str(doc)]) == 0
    # export.json keeps the change as a fraction of 1; the docs say points
    assert f"INT8 changes macro-F1 by {100 * min(deltas):+.2f} to {100 * max(deltas):+.2f} points" in doc.read_text()


def test_the_committed_headline_is_what_the_committed_results_give(tmp_path):
    """The README's headline table, regenerated from the committed quickstart results, is the table the README
    shows: a partial retrain that rewrote results/quickstart/ (dropping a model, moving a score) fails here."""
    import shutil

    from tools.readme_results import HEADLINE_END, HEADLINE_START, main

    shutil.copytree(ROOT / "results" / "quickstart", tmp_path / "results" / "quickstart")
    readme = tmp_path / "README.md"
    readme.write_text(README.read_text())
    assert main(["--run", "quickstart", "--results", str(tmp_path / "results"), "--section", "headline",
                 "--write", str(readme)]) == 0

    def table(text: str) -> list[str]:
        block = text.split(HEADLINE_START)[1].split(HEADLINE_END)[0]
        return [line for line in block.splitlines() if line.startswith("|")]

    assert table(README.read_text()) and table(readme.read_text()) == table(README.read_text())
