"""``edgedistill bundle``: a thin layer over ``bench.bundles.write.write_bundle``.

    edgedistill bundle --run runs/quickstart --out quickstart-bundle        best artifact per goal + teacher refs
    edgedistill bundle --run runs/quickstart --out B --artifacts odd/onnx-int8-dynamic,teacher/onnx-fp32
    edgedistill bundle --run runs/quickstart --out B --all --gpu            every export, plus the GPU pack

Copy the folder to the target machine and run ``edgedistill bench --bundle B --out bench.json``
there (the README's slim install is enough); merge at home with
``edgedistill bench --run runs/<run> --merge bench.json``.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgedistill.configbase import csv_list

    parser.add_argument("--run", required=True, help="the run folder, runs/<run> (exports in artifacts/)")
    parser.add_argument("--out", required=True, help="the bundle folder to write: a new or empty folder, or an "
                        "earlier bundle of this tool (replaced); anything else is refused, --force or not")
    parser.add_argument("--force", action="store_true", help="replace an earlier bundle at --out together with files "
                        "added to it since (never a folder or file this tool did not write, nor the run folder)")
    parser.add_argument("--artifacts", type=csv_list, help="comma-separated <model>/<variant> to carry (default: the "
                        "best ONNX / OpenVINO artifact per goal in the run's bench.json, plus the teacher's "
                        "onnx-fp32 and onnx-int8-dynamic)")
    parser.add_argument("--all", action="store_true", help="carry every ONNX / OpenVINO artifact of the run")
    parser.add_argument("--max-test", type=int, help="cap the carried test texts (stratified, as the bench caps)")
    parser.add_argument("--set", action="append", default=[], metavar="bench.KEY=VALUE",
                        help="bench settings the bundle carries, over the recipe's bench section (repeatable)")
    parser.add_argument("--gpu", action="store_true", help="also carry the GPU pack (FP16 PyTorch weights, "
                        "vocabulary cut to the carried texts) for edgedistill gpu-bench --bundle")
    parser.add_argument("--gpu-max-mb", type=float, help="size budget of the GPU pack in MiB (default 60)")
    parser.add_argument("--gpu-only", action="store_true", help="carry the GPU pack and no ONNX / OpenVINO artifact "
                        "(a GPU machine that takes at most 64 MiB)")


def main(args: argparse.Namespace) -> int:
    import sys

    from bench.bundles.write import BundleError, write_bundle
    from distill.data import DataError
    from edgedistill.configbase import ConfigError, parse_overrides
    from export.errors import ExportError

    try:
        sets = parse_overrides(args.set)
        if set(sets) - {"bench"}:
            raise ConfigError("--set: the bundle only takes bench.KEY=VALUE settings")
        overrides = {**sets.get("bench", {}), **({"max_test": args.max_test} if args.max_test is not None else {})}
        if args.gpu_only and (args.artifacts or args.all):
            raise ConfigError("--gpu-only carries no ONNX / OpenVINO artifact; leave out --artifacts and --all")
        artifacts = [] if args.gpu_only else args.artifacts
        info = write_bundle(args.run, args.out, artifacts, args.all, overrides, args.gpu or args.gpu_only,
                            args.gpu_max_mb, command=["edgedistill"] + sys.argv[1:], force=args.force)
    except (BundleError, ConfigError, DataError, ExportError) as exc:
        print(f"edgedistill bundle: {exc}", file=sys.stderr)
        return 2
    for a in info["artifacts"]:
        print(f"  {a['model']}/{a['variant']}: {a['size_bytes'] / 1e6:.1f} MB ({'; '.join(a['chosen_for'])})")
    if info["gpu"]:
        print(f"  gpu pack: {info['gpu']['total_mb']:.1f} MiB, models {', '.join(info['gpu']['models'])}")
    print(f"wrote {args.out}: {len(info['artifacts'])} artifact(s), {info['test_size']} test texts, "
          f"{info['total_mb']:.1f} MiB, {len(info['files'])} files with sha256 in bundle.json")
    print(f"on the target: edgedistill bench --bundle {args.out} --out bench.json")
    return 0
