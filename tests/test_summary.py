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


def test_a_target_counts_as_met_only_when_every_timing_pass_meets_it():
    from bench.derive import add_derived
    from bench.summary import _ratios, repeat_spreads
    from test_bench_schema import row

    base = row(p50=10.0)                                                     # teacher PyTorch FP32
    fast = row(model="odd", variant="onnx-int8-dynamic", runtime="onnxruntime", precision="int8", p50=1.0, f1=0.8)
    rows = [base, fast]
    add_derived(rows)
    # first pass: 10x; second pass: the teacher ran faster, 6x
    repeats = {base.key_text(): [10.0, 6.0], fast.key_text(): [1.0, 1.0]}
    table = "\n".join(_ratios(rows, rows, repeats, threads=2))
    assert "10.0x (other pass: 6.0x) | >= 8x | **no** |" in table
    assert "2 of 2" not in table and "1 of 2 (median spread 66.7%" in table   # 6 -> 10 is a 67% spread
    steady = {base.key_text(): [10.0, 9.5], fast.key_text(): [1.0, 1.05]}
    assert "10.0x (other pass: 9.0x) | >= 8x | yes |" in "\n".join(_ratios(rows, rows, steady, threads=2))
    assert repeat_spreads(steady, threads=1) == []                          # other thread counts are left out
