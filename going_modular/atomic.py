# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Write a file so that it is never half-written: to a temporary name beside it, then rename."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _umask() -> int:
    """The process's umask (os.umask can only be read by setting it, so set it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save `obj` to `path`; if the program dies halfway, the old `path` is still intact.

    The temporary file is flushed to disk, given the mode open() would give (0644 with the usual
    umask), and renamed over `path` with os.replace, which is atomic on one file system.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600)
        os.replace(tmp, path)
    except BaseException:  # also Ctrl-C: leave the old file and no temporary behind
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
