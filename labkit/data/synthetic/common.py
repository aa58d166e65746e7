"""Where embedded datasets live and how they are written (once, whole, deterministic)."""

import os
import shutil
import uuid
from pathlib import Path


def default_data_home():
    """``$LABKIT_DATA_HOME``, else ``data/embedded/`` in a source checkout (git-ignored), else ``~/.cache/labkit/embedded``."""
    if os.environ.get("LABKIT_DATA_HOME"):
        return Path(os.environ["LABKIT_DATA_HOME"])
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "data" / "README.md").is_file() and (checkout / "labs").is_dir():
        return checkout / "data" / "embedded"
    return Path.home() / ".cache" / "labkit" / "embedded"


def write_once(root, name, writer):
    """Run ``writer(tmp_folder)`` once and rename the result to ``root/name``; later calls reuse it.

    A crash half-way leaves only a temporary folder (removed on the next try), never a half-written dataset.
    """
    final = Path(root) / name
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        writer(tmp)
        os.replace(tmp, final)
    except OSError:
        if not final.is_dir():  # a real failure, not a concurrent writer that finished first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
