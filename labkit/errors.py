"""The one exception type labkit raises for bad input.

Lab scripts turn it into a single ``error: …`` line on stderr and exit code 2; API users catch it as a
``ValueError``.
"""


class LabkitInputError(ValueError):
    """Bad input: a missing folder, an unreadable file, an unpaired image, a wrong size or an impossible setting.

    The message names the file, folder or flag at fault and fits on one line.
    """


def require(condition, message):
    """Raise `LabkitInputError(message)` unless `condition` holds."""
    if not condition:
        raise LabkitInputError(message)
