"""Read the input files of ``labkit predict``, one by one, with a progress bar and the ``--skip-bad-files`` rule."""

from labkit.errors import LabkitInputError, require
from labkit.progress import progress


def readable_inputs(files, skip_bad_files, read):
    """``[(file, read(file))]`` of the `files` that `read` accepts.

    A bad file (``read`` raises `LabkitInputError`) stops with its one-line error, or with `skip_bad_files` is
    listed on screen (``skipped: …``) and left out.

    Raises:
        LabkitInputError: the first bad file's error, or "no readable input file left" when none was kept.
    """
    kept = []
    for path in progress(files, desc="reading", unit="file"):
        try:
            kept.append((path, read(path)))
        except LabkitInputError as exc:
            if not skip_bad_files:
                raise
            print(f"skipped: {exc}")
    require(kept, "no readable input file left to predict")
    return kept
