"""A command replaces only what it made, and one writer works on a run folder at a time: bundles,
GPU packs, run names, the run lock for every writer, result files that are never an input."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_bench_run import make_tiny_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("owned")
    return root, make_tiny_run(root, methods=("teacher",), exports=("onnx-fp32",))


def _bundle(run, out, *extra) -> int:
    from edgedistill_cli.commands import main

    return main(["bundle", "--run", str(run), "--out", str(out), "--artifacts", "teacher/onnx-fp32",
                 "--max-test", "10", *extra])


@contextlib.contextmanager
def held(run_dir: Path):
    """The run folder's lock held by another process (a running stage)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom edgedistill.layout import run_lock\n"
         f"with run_lock({str(run_dir)!r}, ['edgedistill', 'bench', '--run', 'X']):\n"
         "    print('held', flush=True)\n    time.sleep(120)\n"], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


# 1. --force replaces only a bundle this tool wrote ---------------------------------------------------------------

def test_force_never_replaces_a_user_folder_or_file(tiny_run, tmp_path, capsys, monkeypatch):
    _, run = tiny_run
    mine = tmp_path / "u"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    afile = tmp_path / "afile.txt"
    afile.write_text("notes")
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "recipe.yaml").write_text("run: {name: x}\n")
    for out in (mine, afile, configs):
        assert _bundle(run, out, "--force") == 2
        assert "never replaced, --force or not" in capsys.readouterr().err
    assert (mine / "thesis.txt").read_text() == "years of work" and afile.read_text() == "notes"
    assert (configs / "recipe.yaml").is_file()
    # a folder inside the run folder (its own bundle) is refused too
    assert _bundle(run, run / "newb") == 2 and not (run / "newb").exists()
    assert "lies inside" in capsys.readouterr().err


# 2. rewriting a bundle keeps what was added to it -----------------------------------------------------------------

def test_rewriting_a_bundle_refuses_files_it_did_not_write(tiny_run, tmp_path, capsys):
    _, run = tiny_run
    out = tmp_path / "B"
    assert _bundle(run, out) == 0
    assert _bundle(run, out) == 0                       # an untouched bundle is replaced
    (out / "bench.json").write_text("{}")
    (out / "NOTES.txt").write_text("measured on the Pi")
    capsys.readouterr()
    assert _bundle(run, out) == 2
    err = capsys.readouterr().err
    assert "2 file(s) it did not write" in err and "NOTES.txt" in err and "bench.json" in err
    assert (out / "NOTES.txt").read_text() == "measured on the Pi" and (out / "bench.json").is_file()
    assert _bundle(run, out, "--force") == 0 and not (out / "NOTES.txt").exists()


# 3. gpu-pack --out is guarded the same way ------------------------------------------------------------------------

def test_gpu_pack_out_replaces_only_a_pack(tiny_run, tmp_path, capsys):
    from edgedistill_cli.commands import main

    root, run = tiny_run
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    user = tmp_path / "u3"
    user.write_text("mine")
    for out in (run, run.parent, user, run / "models", run / "models" / "teacher"):
        assert main(["gpu-pack", "--run", str(run), "--out", str(out)]) == 2, out
        assert "--out" in capsys.readouterr().err
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == before
    assert user.read_text() == "mine"


# 4. run.name "." and ".." --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [".", "..", "...", " "])
def test_a_run_name_that_is_no_folder_of_its_own_is_refused(name):
    from edgedistill.configbase import ConfigError
    from edgedistill.recipe import load_recipe

    with pytest.raises(ConfigError, match="plain folder name"):
        load_recipe(overrides={"run": {"name": name}})


def test_train_with_run_name_dotdot_writes_nothing(tmp_path, monkeypatch, capsys):
    from edgedistill_cli.commands import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipe.yaml").write_text("mine\n")
    (tmp_path / "dotdot.yaml").write_text(yaml.safe_dump({"run": {"name": ".."}}))
    assert main(["train", "dotdot.yaml"]) == 2
    assert "plain folder name" in capsys.readouterr().err
    assert (tmp_path / "recipe.yaml").read_text() == "mine\n" and not (tmp_path / "runs").exists()
    assert main(["export", "--model", str(tmp_path), "--data", "tweet-sentiment", "--name", ".."]) == 2
    assert "plain folder name" in capsys.readouterr().err


# 5. / 6. every writer of a run folder takes its lock --------------------------------------------------------------

def test_train_and_merge_wait_for_no_one_they_are_refused_while_the_run_is_busy(tiny_run, tmp_path, capsys):
    from edgedistill_cli.commands import main

    root, run = tiny_run
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    from bench.schema import new_document

    other = tmp_path / "other.json"
    other.write_text(json.dumps(new_document("tiny")))
    with held(run) as proc:
        assert main(["bench", "--run", str(run), "--merge", str(other)]) == 2
        assert f"in use by another edgedistill process (pid {proc.pid}" in capsys.readouterr().err
        # a recipe whose data cannot be read: the lock is the first thing train meets, before the data
        recipe["data"]["path"] = str(tmp_path / "missing.csv")
        path.write_text(yaml.safe_dump(recipe))
        assert main(["train", str(path), "--methods", "teacher", "--force"]) == 2
        assert f"in use by another edgedistill process (pid {proc.pid}" in capsys.readouterr().err
        assert (run / "models" / "teacher" / "edgedistill.json").is_file()


def test_a_refused_command_leaves_no_empty_run_folder(tmp_path):
    from edgedistill.layout import run_lock

    run = tmp_path / "runs" / "new"
    with pytest.raises(RuntimeError), run_lock(run, create=True):
        raise RuntimeError("refused")
    assert not run.exists()
    with run_lock(run, create=True):
        (run / "recipe.yaml").write_text("x")
    assert (run / "recipe.yaml").is_file() and not (run / ".lock.json").exists()


# 7. no command writes over its own input or a file it does not own -----------------------------------------------

def test_compare_out_never_replaces_an_input_or_another_file(tmp_path, capsys):
    from bench.schema import new_document
    from edgedistill_cli.commands import main

    a, b, metrics = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "metrics.json"
    for p in (a, b):
        p.write_text(json.dumps(new_document("tiny")))
    metrics.write_text('{"macro_f1": 0.9}')
    for out in (a, b, metrics, tmp_path):
        before = out.read_text() if out.is_file() else None
        assert main(["compare", str(a), str(b), "--out", str(out)]) == 2
        assert "--out" in capsys.readouterr().err
        assert (out.read_text() if out.is_file() else None) == before


# 8. a stand-alone GPU pack is verified like a bundle --------------------------------------------------------------

def test_a_stand_alone_pack_is_verified_and_never_written_over(tiny_run, tmp_path, capsys):
    from bench.bundles.gpu_pack import pack_run
    from edgedistill_cli.commands import main

    _, run = tiny_run
    pack = tmp_path / "P"
    info = pack_run(run, pack, max_test=10)
    assert set(info["files"]) == {"inputs.json", "models/teacher/config.json", "models/teacher/model.safetensors"}
    assert pack_run(run, pack, max_test=10)["files"]        # an earlier pack is replaced
    manifest = (pack / "pack.json").read_text()
    out = tmp_path / "gpu.json"
    assert main(["gpu-bench", "--pack", str(pack), "--out", str(pack / "pack.json"), "--smoke"]) == 2
    assert "own inputs" in capsys.readouterr().err and (pack / "pack.json").read_text() == manifest
    weights = pack / "models" / "teacher" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert main(["gpu-bench", "--pack", str(pack), "--out", str(out), "--smoke"]) == 2
    err = capsys.readouterr().err
    assert "models/teacher/model.safetensors: sha256 differs from the one in pack.json" in err and not out.exists()
    assert main(["gpu-bench", "--pack", str(tmp_path / "missing"), "--out", str(out), "--smoke"]) == 2
    assert "is not a GPU pack: pack.json is missing" in capsys.readouterr().err
