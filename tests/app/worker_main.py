"""A worker process serving the fake runners (the SIGKILL test starts and kills it)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.commands.service import run_worker  # noqa: E402
from app.settings import Settings  # noqa: E402
from tests.app.fake_runners import FAKE_RUNNERS  # noqa: E402

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_worker(Settings(), runners=FAKE_RUNNERS)
