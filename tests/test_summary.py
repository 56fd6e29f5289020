"""The README results block is generated from result files: every number traces back to them."""
from bench.summary import END, START, build, replace_block

from test_dashboard import RUN, write_results


def test_summary_is_built_from_the_result_files(tmp_path):
    root = tmp_path / "results"
    write_results(root)
    block = build(RUN, root)
    assert "### Accuracy on the test split" in block and "### Export" in block and "### Speed on this CPU" in block
    assert (root / RUN / "tradeoff.png").stat().st_size > 1000
    assert "keeps" in block and "% of the teacher" in block


def test_readme_block_is_replaced_between_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold\n{END}\noutro\n")
    replace_block(readme, "new block\n")
    assert readme.read_text() == f"intro\n{START}\nnew block\n{END}\noutro\n"
