"""Browser check: headless Chromium opens /docs with no network, and the operations list renders.

The check re-runs itself inside fresh network and PID namespaces (``unshare``, root needed), where
only the loopback interface exists: the Swagger UI page can load nothing but what the server
bundles. It starts ``autodistiller serve --no-worker``, has Chromium dump the rendered DOM (to count
the operation blocks Swagger UI drew) and take a screenshot.

Run:  python bench/browser_docs.py     (needs the Debian package ``chromium``)
Writes bench/results/browser_docs.png and bench/results/browser_docs.json.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.service_common import BENCH, ROOT, bench_env, free_port, running, wait_healthy  # noqa: E402

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--virtual-time-budget=20000",
    "--run-all-compositor-stages-before-draw",
]
EXPECTED = ["/datasets", "/recommend", "/jobs", "/jobs/{job_id}/events", "/meta-learner", "/health"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("chromium is not installed: apt-get install -y chromium")


def _interfaces() -> list[str]:
    """Network interfaces of this process's network namespace."""
    return sorted(name for _, name in socket.if_nameindex())


def check() -> dict[str, object]:
    out_dir = BENCH / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    browser = _chromium()
    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        env = bench_env(Path(tmp) / "data", AUTODISTILLER_META_LEARNER__EMBEDDINGS="off")
        port = free_port()
        url = f"http://127.0.0.1:{port}/docs"
        with running(
            ["serve", "--port", str(port), "--no-worker", "--log-level", "warning"],
            env,
            Path(tmp) / "server.log",
        ) as proc:
            wait_healthy(f"http://127.0.0.1:{port}", proc)
            base = [browser, *FLAGS, f"--user-data-dir={tmp}/profile"]
            dom = subprocess.run(
                [*base, "--dump-dom", url], capture_output=True, text=True, timeout=180
            ).stdout
            screenshot = out_dir / "browser_docs.png"
            subprocess.run(
                [*base, "--window-size=1280,2200", f"--screenshot={screenshot}", url],
                capture_output=True,
                timeout=180,
                check=True,
            )
    blocks = re.findall(r'class="opblock opblock-(get|post|delete|put|patch)', dom)
    paths = set(re.findall(r'data-path="([^"]+)"', dom))
    result = {
        "url": "/docs",
        "interfaces": _interfaces(),
        "network_isolated": _interfaces() == ["lo"],
        "operations_rendered": len(blocks),
        "methods": sorted(set(blocks)),
        "paths_rendered": sorted(paths),
        "missing_paths": [p for p in EXPECTED if p not in paths],
        "screenshot": str(screenshot.relative_to(ROOT)),
        "command": "python bench/browser_docs.py",
    }
    (out_dir / "browser_docs.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    if "--inside" not in sys.argv:
        if shutil.which("unshare") is None:
            raise SystemExit("unshare(1) is needed to run the check without network")
        script = f"ip link set lo up && exec {sys.executable} {Path(__file__).resolve()} --inside"
        code = subprocess.call(
            ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c", script],
            cwd=ROOT,
        )
        raise SystemExit(code)
    result = check()
    print(json.dumps(result, indent=2))
    ok = result["network_isolated"] and result["operations_rendered"] >= 15 and not result["missing_paths"]
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
