"""The recommender, its CLI and artifact loading never import torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_recommender_and_the_meta_cli_does_not_import_torch():
    assert run("import sys, recommender, app.commands.meta; print('torch' in sys.modules)") == "False"


def test_saving_and_loading_an_artifact_does_not_import_torch(tmp_path):
    code = f"""
import sys
from recommender import MetaLearner, save_meta_learner, load_meta_learner
from tests.recommender.synthetic import synthetic_history
recs = synthetic_history(2, runs_per_group=(5, 7))
path = save_meta_learner(MetaLearner(max_iter=5).fit(recs), {str(tmp_path / "m.skops")!r})
load_meta_learner(path)
print('torch' in sys.modules)
"""
    assert run(code) == "False"
