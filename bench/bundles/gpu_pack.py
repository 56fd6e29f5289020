"""Pack a run's checkpoints for the GPU machine: small, self-describing, no tokenizer needed.

    edgedistill gpu-pack --run runs/hate-speech            # -> runs/hate-speech/gpu_pack/

The GPU machine receives the working tree plus carried folders, 64 MiB in all, so a run's five
FP32 checkpoints (~90 MB each for MiniLM-L6) cannot travel as they are. The pack therefore
- stores weights in FP16 (half the bytes; FP32 rows upcast them, see README.md),
- cuts each embedding matrix to the token ids that occur in the pre-tokenized test texts (the
  30k-word vocabulary is half of MiniLM-L6's parameters; the test split uses a few thousand),
  renumbering the ids consistently, so accuracy on these texts is unchanged,
- ships the test split already tokenized (ids, labels) and the timing inputs (the same seeded
  natural-length texts and fixed-length token runs as the CPU bench), so no tokenizer runs there,
- records each model's real size on disk, parameter count and ONNX FP32 size for the rows,
- fills a budget (``--max-mb``, default 60) teacher first, then the smallest models; a model that
  does not fit travels as its config alone and is timed with random weights (latency does not
  depend on weight values), its accuracy left empty and noted in the result file.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

PACK_VERSION = 1
DEFAULT_MAX_MB = 60.0


class PackError(ValueError):
    """A run that cannot be packed; the message says why and what to do."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_pack_out(run_dir: Path, out: Path, force: bool = False) -> None:
    """Refuse an ``--out`` whose replacement would lose what the pack did not write
    (``edgedistill.owned.check_output_folder``): a missing or empty folder or an earlier pack only
    (files added to it since with ``force``); never the run folder, a folder holding it, its
    models/ or artifacts/, a user's folder or a file."""
    from bench.bundles.spec import PACK_FILE, pack_files
    from edgedistill import layout
    from edgedistill.owned import OutputError, check_output_folder

    try:
        check_output_folder(out, what="GPU pack", manifest=PACK_FILE, own_files=pack_files, protect=[run_dir],
                            protect_inside=[layout.models_dir(run_dir), layout.artifacts_dir(run_dir)], force=force,
                            example=f"a new folder (default: {run_dir / 'gpu_pack'})")
    except OutputError as exc:
        raise PackError(str(exc)) from None


def pack_run(run_dir: str | Path, out: str | Path | None = None, max_mb: float = DEFAULT_MAX_MB,
             models: list[str] | None = None, max_test: int | None = None, force: bool = False) -> dict:
    """Write the pack folder; returns pack.json's contents (with every file's sha256, checked by
    ``bench.bundles.spec.verify_pack`` on the GPU machine). ``out`` replaces only an earlier pack."""
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "gpu_pack"
    if not (run_dir / "recipe.yaml").is_file():
        raise PackError(f"{run_dir} is not a run folder (no recipe.yaml); pass --run runs/<run>")
    check_pack_out(run_dir, out, force)
    if not max_mb > 0 or max_mb != max_mb or max_mb == float("inf"):
        raise PackError(f"--max-mb {max_mb:g}: the pack's size budget must be a positive number of MiB "
                        f"(default {DEFAULT_MAX_MB:g})")
    import torch
    from safetensors.torch import save_file

    from bench.bundles.spec import PACK_FILE, file_table
    from bench.config import FIXED_SEQ_LENS, load_bench_config
    from bench.inputs import bench_inputs, cap_test, text_order
    from bench.plan import discover
    from distill.data import load_dataset
    from edgedistill import layout
    from edgedistill.checkpoint import load_checkpoint
    from edgedistill.io import atomic_dir
    from edgedistill.metadata import CheckpointMeta
    from edgedistill.provenance import git_commit
    from edgedistill.recipe import load_recipe
    from edgedistill.runtime import TextEncoder, model_input_names

    recipe = load_recipe(layout.recipe_file(run_dir))
    cfg = load_bench_config(recipe.bench, {"max_test": max_test} if max_test else None)
    checkpoints = [a for a in discover(run_dir)[0] if a.variant == "pytorch" and (not models or a.model in models)]
    if not checkpoints:
        raise PackError(f"{run_dir} has no finished checkpoints{' among ' + str(models) if models else ''}; "
                        "train first (edgedistill train)")
    onnx_fp32 = {a.model: a.size_bytes / 1e6 for a in discover(run_dir)[0] if a.variant == "onnx-fp32"}
    tokenizers = {_sha(Path(a.folder) / "tokenizer.json") for a in checkpoints}
    if len(tokenizers) > 1:
        raise PackError("the checkpoints use different tokenizers, but a pack shares one pre-tokenized test set; "
                        "pack them separately with --models")

    dataset = load_dataset(recipe.data)
    texts, labels = cap_test(list(dataset.test.texts), [int(x) for x in dataset.test.labels], cfg)
    first = Path(checkpoints[0].folder)
    meta = CheckpointMeta.read(first)
    model0, _ = load_checkpoint(first)
    input_names = model_input_names(model0)
    del model0
    encoder = TextEncoder(first, meta.max_length, input_names)
    test_ids = [encoder([t])["input_ids"][0].tolist() for t in texts]
    long_text = bench_inputs(dataset, load_bench_config(recipe.bench, {"seq_lens": list(FIXED_SEQ_LENS),
                                                                        "max_test": cfg.max_test}))["long_text"]
    fixed = {str(n): encoder([long_text], pad_to=n)["input_ids"][0].tolist() for n in FIXED_SEQ_LENS}
    # The kept vocabulary: every id the carried inputs use, plus padding; renumbered 0..k-1 in order.
    kept = sorted({i for ids in [*test_ids, *fixed.values()] for i in ids} | {encoder.pad_id})
    new_id = {old: new for new, old in enumerate(kept)}
    remap = lambda ids: [new_id[i] for i in ids]  # noqa: E731

    entries = []
    for a in checkpoints:
        model, _ = load_checkpoint(a.folder)
        emb = model.get_input_embeddings().weight
        state = {}
        for name, tensor in model.state_dict().items():
            if tensor.data_ptr() == emb.data_ptr() and tensor.shape == emb.shape:
                tensor = tensor[torch.tensor(kept)]
            state[name] = (tensor.half() if tensor.is_floating_point() else tensor).contiguous().clone()
        config = model.config
        entries.append({"artifact": a, "state": state, "config": config, "vocab": int(emb.shape[0]),
                        "bytes": sum(t.numel() * t.element_size() for t in state.values())})
        del model

    inputs = {"input_names": list(input_names), "pad_id": new_id[encoder.pad_id], "labels": labels,
              "test_ids": [remap(ids) for ids in test_ids], "fixed_ids": {k: remap(v) for k, v in fixed.items()},
              "order": text_order(len(texts), cfg.seed), "natural_texts": cfg.natural_texts}
    inputs_text = json.dumps(inputs, separators=(",", ":"))
    budget = max_mb * 2**20 - len(inputs_text) - 64 * 1024   # leave room for configs and pack.json
    # Teacher first (every ratio needs it), then the smallest, so the most models carry weights.
    entries.sort(key=lambda e: (e["artifact"].model != "teacher", e["bytes"]))
    used, pack_models = 0, {}
    with atomic_dir(out) as tmp:
        (tmp / "inputs.json").write_text(inputs_text)
        for e in entries:
            a = e["artifact"]
            folder = tmp / "models" / a.model
            folder.mkdir(parents=True)
            e["config"].vocab_size = len(kept)
            e["config"].save_pretrained(folder)
            fits = used + e["bytes"] <= budget
            if fits:
                save_file(e["state"], str(folder / "model.safetensors"))
                used += e["bytes"]
            pack_models[a.model] = {"weights": "fp16" if fits else None, "params": a.params,
                                    "size_mb": a.size_bytes / 1e6, "onnx_fp32_mb": onnx_fp32.get(a.model),
                                    "vocab": e["vocab"], "kept_vocab": len(kept), "packed_mb": e["bytes"] / 1e6}
        info = {"pack_version": PACK_VERSION, "run": run_dir.name, "label_names": list(dataset.label_names),
                "max_length": meta.max_length, "test_size": len(texts), "models": pack_models,
                "order": [e["artifact"].model for e in entries], "source_commit": git_commit(),
                "max_mb": max_mb, "total_mb": (used + len(inputs_text)) / 2**20, "files": file_table(tmp)}
        (tmp / PACK_FILE).write_text(json.dumps(info, indent=2))
    return info


def add_arguments(parser) -> None:
    parser.add_argument("--run", required=True, help="runs/<run>")
    parser.add_argument("--out", help="pack folder (default: runs/<run>/gpu_pack, git-ignored with runs/)")
    parser.add_argument("--max-mb", type=float, default=DEFAULT_MAX_MB, help="size budget in MiB")
    parser.add_argument("--models", type=lambda s: [m for m in s.split(",") if m], help="comma-separated subset")
    parser.add_argument("--max-test", type=int, help="cap the test texts carried (default: the full split)")
    parser.add_argument("--force", action="store_true", help="replace an earlier pack at --out together with files "
                        "added to it since (never anything that is not a pack)")


def main(args) -> int:
    try:
        info = pack_run(args.run, args.out, args.max_mb, args.models, args.max_test, force=args.force)
    except (PackError, ValueError) as exc:
        print(f"edgedistill gpu-pack: {exc}", file=sys.stderr)
        return 2
    out = args.out or str(Path(args.run) / "gpu_pack")
    for name, m in info["models"].items():
        state = f"fp16 weights, {m['packed_mb']:.1f} MB" if m["weights"] else "config only (timing with random weights)"
        print(f"  {name}: {state}; vocabulary {m['vocab']} -> {m['kept_vocab']}")
    print(f"packed {len(info['models'])} model(s), {info['total_mb']:.1f} MiB, into {out}")
    return 0
