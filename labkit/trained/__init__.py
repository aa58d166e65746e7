"""Use what was trained: open a finished run (`load_run`), apply its model to new files (``run.predict``), score it
on a held-out folder (``run.evaluate``), and grade many runs in one table (`labkit.trained.grading`).

The console commands are ``labkit predict RUN_DIR INPUT… --out DIR`` and ``labkit evaluate RUN_DIR… --data-dir TEST``
(`labkit.trained.commands`).
"""

from labkit.trained.run import TrainedRun, load_run

__all__ = ["TrainedRun", "load_run"]
