"""The job artifact store: one folder per job under ``<data_dir>/artifacts/jobs/<job id>/``.

The engine writes ``report.json``, ``learning_curves.png``, ``student/`` and ``checkpoint/``
there; the worker appends the job's log to ``job.log``. The student archive is built on first
download (atomically: a temporary file renamed into place).
"""

from __future__ import annotations

import os
import tarfile
import tempfile
import threading
from collections import deque
from pathlib import Path

from app.errors import ArtifactNotReadyError, NotFoundError
from app.schemas.jobs import ARTIFACT_NAMES


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._archive_lock = threading.Lock()

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def log_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "job.log"

    def available(self, job_id: str) -> list[str]:
        """Names (of :data:`ARTIFACT_NAMES`) this job's folder can serve."""
        folder = self.job_dir(job_id)
        out = [n for n in ("report.json", "learning_curves.png") if (folder / n).is_file()]
        if (folder / "student" / "config.json").is_file():
            out.append("student.tar.gz")
        return out

    def path(self, job_id: str, name: str) -> Path:
        """The file behind an artifact name, building the student archive on first use.

        Raises:
            NotFoundError: ``name`` is not an artifact name.
            ArtifactNotReadyError: The job has not produced it (yet).
        """
        if name not in ARTIFACT_NAMES:
            raise NotFoundError("artifact", name)
        if name not in self.available(job_id):
            raise ArtifactNotReadyError(f"job {job_id} has no {name} (yet)")
        folder = self.job_dir(job_id)
        if name != "student.tar.gz":
            return folder / name
        archive = folder / "student.tar.gz"
        with self._archive_lock:
            if not archive.is_file():
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".student-", suffix=".tar.gz")
                os.close(fd)
                try:
                    with tarfile.open(tmp, "w:gz") as tar:
                        tar.add(folder / "student", arcname="student")
                    os.replace(tmp, archive)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
        return archive

    def log_tail(self, job_id: str, lines: int) -> str:
        """The last ``lines`` lines of the job log ('' before the job first ran)."""
        path = self.log_path(job_id)
        if not path.is_file():
            return ""
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
