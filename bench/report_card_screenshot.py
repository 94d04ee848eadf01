"""Render a run's report card in a real headless browser (Chromium) and save a screenshot.

    python bench/report_card_screenshot.py --run-dir runs/demo        # an existing finished run
    python bench/report_card_screenshot.py --demo                      # small real run first (~2 min CPU)

With ``--demo`` it distils MiniLM-L6 into a 2-layer student on ``rt_polarity_200`` (with the no-KD
baseline), exports ONNX + int8 and builds the card. The card is rebuilt when missing (or with
``--rebuild``). Needs ``chromium`` (Debian: ``apt-get install -y chromium``). Writes
``bench/results/report_card.png`` and ``bench/results/report_card_screenshot.json`` (the command,
the card's path and the browser's version).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def demo_run(out: Path) -> Path:
    """A small real distillation (MI-alpha 0.9 skip + KD) with the no-KD baseline, exported."""
    from app.commands.engine import demo_spec
    from models.pipeline import run_distillation

    if not (out / "report.json").is_file():
        spec = demo_spec("rt_polarity_200")
        run_distillation(spec, out, device="cpu")
    return out


def screenshot(html: Path, png: Path, *, width: int = 1280, height: int = 4400, timeout: int = 120) -> str:
    """Render ``html`` with headless Chromium into ``png``; return the browser's version string."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("no Chromium found: install it (Debian: apt-get install -y chromium)")
    version = subprocess.run(
        [browser, "--version"], capture_output=True, text=True, timeout=60
    ).stdout.strip()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={width},{height}",
            html.resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not png.is_file() or png.stat().st_size == 0:
        raise SystemExit(f"Chromium wrote no screenshot (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return version


def main() -> None:
    ap = argparse.ArgumentParser(description="Screenshot a report card in headless Chromium")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-dir", type=Path, help="a finished run directory")
    src.add_argument(
        "--demo", action="store_true", help="make a small real run first (runs/report_card_demo)"
    )
    ap.add_argument("--rebuild", action="store_true", help="rebuild the export and the card even if present")
    ap.add_argument(
        "--height", type=int, default=4400, help="window height in pixels (the screenshot's height)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "report_card.png")
    args = ap.parse_args()

    import torch
    import transformers

    transformers.logging.disable_progress_bar()
    torch.set_num_threads(1)
    run_dir = demo_run(ROOT / "runs" / "report_card_demo") if args.demo else args.run_dir
    html = run_dir / "report_card.html"
    if args.rebuild or not html.is_file():
        from models.errors import ExportError
        from models.export import export_student
        from models.report_card import build_report_card

        try:
            export_student(run_dir)
        except ExportError as exc:  # the card shows the failure; the screenshot should too
            print(f"export failed (shown on the card): {exc.message}", file=sys.stderr)
        build_report_card(run_dir)
    t0 = time.perf_counter()
    version = screenshot(html, args.out, height=args.height)
    record = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "run_dir": str(run_dir),
        "html": str(html),
        "png": str(args.out),
        "browser": version,
        "render_s": round(time.perf_counter() - t0, 2),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.with_name("report_card_screenshot.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
