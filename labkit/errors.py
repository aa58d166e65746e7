"""The exceptions labkit raises for bad input and for faults of the machine.

Lab scripts turn `LabkitInputError` into a single ``error: …`` line on stderr and exit code 2 (API users catch it as a
``ValueError``), and `RunWriteError` (a full disk, a folder that became unwritable mid-run) into one line and exit
code 1 that says what the run folder keeps and how to continue.
"""

import errno


class LabkitInputError(ValueError):
    """Bad input: a missing folder, an unreadable file, an unpaired image, a wrong size or an impossible setting.

    The message names the file, folder or flag at fault and fits on one line.
    """


class RunWriteError(OSError):
    """A file of a run could not be written (full disk, permission lost, read-only file system).

    The file it names was not changed: labkit writes every file to a temporary name first and renames it only
    once it is complete (`labkit.run_folder.atomic_write`).

    Attributes:
        path: the file labkit was writing.
        reason: why, in a few words (``no space left on device``, ``Permission denied``, ...).
    """

    def __init__(self, path, cause):
        self.path = path
        code = getattr(cause, "errno", None)
        if code == errno.ENOSPC or "No space left" in str(cause):
            code, self.reason = errno.ENOSPC, "no space left on device"
            message = f"no space left on device writing {path}"
        else:
            self.reason = getattr(cause, "strerror", None) or str(cause)
            message = f"cannot write {path} ({self.reason})"
        super().__init__(code, message)

    def __str__(self):
        return self.strerror

    @property
    def disk_full(self):
        return self.errno == errno.ENOSPC


def require(condition, message):
    """Raise `LabkitInputError(message)` unless `condition` holds."""
    if not condition:
        raise LabkitInputError(message)
