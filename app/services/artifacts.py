"""The job artifact store: one folder per job under ``<data_dir>/artifacts/jobs/<job id>/``.

The engine writes ``report.json``, ``learning_curves.png``, ``student/`` and ``checkpoint/``
there, then (unless the job skips delivery) ``export/`` (ONNX, int8 ONNX, tokenizer,
``export.json``) and ``report_card.html``/``.json``; the worker appends the job's log to
``job.log``. The archives (``student.tar.gz``: the Hugging Face folder; ``student_onnx.tar.gz``: the
verified ONNX models with tokenizer and labels) are built on first download (atomically: a
temporary file renamed into place).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any

from app.errors import ArtifactNotReadyError, NotFoundError
from app.schemas.jobs import ARTIFACT_NAMES

# Archives built on first download: artifact name -> (folder in the job directory, file it needs).
ARCHIVES = {
    "student.tar.gz": ("student", "config.json"),
    "student_onnx.tar.gz": ("export", "model.onnx"),
}
# Plain files served as they are: artifact name -> path in the job directory.
FILES = {
    "report.json": "report.json",
    "learning_curves.png": "learning_curves.png",
    "report_card.html": "report_card.html",
    "report_card.json": "report_card.json",
    "export.json": "export/export.json",
}


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._archive_lock = threading.Lock()

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def log_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "job.log"

    def available(self, job_id: str) -> list[str]:
        """Names (of :data:`ARTIFACT_NAMES`) this job's folder can serve, in that order.

        The ONNX archive holds only the variants that passed verification (a failed one is deleted
        by the exporter), so it is offered whenever the fp32 model passed.
        """
        folder = self.job_dir(job_id)
        out = []
        for name in ARTIFACT_NAMES:
            if name in FILES:
                ok = (folder / FILES[name]).is_file()
            else:
                sub, needed = ARCHIVES[name]
                ok = (folder / sub / needed).is_file()
            if ok:
                out.append(name)
        return out

    def path(self, job_id: str, name: str) -> Path:
        """The file behind an artifact name, building an archive on first use.

        Raises:
            NotFoundError: ``name`` is not an artifact name.
            ArtifactNotReadyError: The job has not produced it (yet).
        """
        if name not in ARTIFACT_NAMES:
            raise NotFoundError("artifact", name)
        if name not in self.available(job_id):
            raise ArtifactNotReadyError(f"job {job_id} has no {name} (yet)")
        folder = self.job_dir(job_id)
        if name in FILES:
            return folder / FILES[name]
        sub = ARCHIVES[name][0]
        archive = folder / name
        with self._archive_lock:
            if not archive.is_file():
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{sub}-", suffix=".tar.gz")
                os.close(fd)
                try:
                    with tarfile.open(tmp, "w:gz") as tar:
                        _add_folder(tar, folder / sub, name.removesuffix(".tar.gz"))
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


def _add_folder(tar: tarfile.TarFile, folder: Path, arcname: str) -> None:
    """Add ``folder`` as ``arcname``: JSON files with no absolute server path, no symlinks.

    Hugging Face writes the folder a model was loaded from into ``config.json``
    (``_name_or_path``): an absolute path of this machine, which a downloaded archive must not carry.
    """
    tar.add(folder, arcname=arcname, recursive=False)
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            continue  # never archive a link to elsewhere on the server
        name = f"{arcname}/{path.relative_to(folder).as_posix()}"
        if path.is_file() and path.suffix == ".json":
            data = portable_json(path.read_bytes())
            info = tar.gettarinfo(str(path), arcname=name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        else:
            tar.add(path, arcname=name, recursive=False)


_PATH_KEYS = ("path", "dir", "file")


def portable_json(data: bytes) -> bytes:
    """A JSON file's bytes with each absolute path under a path-like key (``_name_or_path``,
    ``tokenizer_file``, ...) cut to its last component; anything unparsable is returned as is."""
    try:
        value = json.loads(data)
    except ValueError:
        return data
    changed = False

    def walk(node: Any) -> Any:
        nonlocal changed
        if isinstance(node, dict):
            out = {}
            for key, item in node.items():
                if (
                    isinstance(item, str)
                    and os.path.isabs(item)
                    and any(k in key.lower() for k in _PATH_KEYS)
                ):
                    out[key] = Path(item).name
                    changed = True
                else:
                    out[key] = walk(item)
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    portable = walk(value)
    return json.dumps(portable, indent=2, ensure_ascii=False).encode() if changed else data
