"""Runs of many models: variants (``--sweep``), folds (``--folds``), child run folders, comparison tables and figures.

A lab trains one model per call of its ``main(argv)``. This module calls it once per variant, each time with the
variant's flags and ``--out <parent>/<variant>``, so every variant is a complete run folder of its own, named
readably (``lr=1e-05,batch_size=4``, ``fold-2``). With ``--folds K`` each variant folder holds ``fold-1`` …
``fold-K`` and the mean ± std over them. The parent folder then gets:

* ``comparison.csv`` / ``comparison.md``: one row per variant: its settings, best epoch, best and final monitored
  value, training seconds and parameters (with folds: means, and ``*_std`` columns; ``mean ± std`` in the Markdown);
* ``comparison.png``: every variant's training (solid) and validation (dashed) curves, one panel per metric, the
  best epoch of each marked;
* ``folds.csv`` (with ``--folds``): one row per fold run;
* ``metrics.json``: the winner (best monitored value, on validation data) and each variant's summary.

A child with ``metrics.json`` is finished; ``--resume --out PARENT`` keeps those, resumes the interrupted one from its
last completed epoch and runs the rest, always with the plan stored in the parent's ``config.json``. A lab states
its named comparisons as `Preset` objects (e.g. ``--compare`` = frozen vs fine-tuned); it never builds child
folders itself. ``labkit compare RUN_DIR... [--out DIR]`` (`labkit.cli`) builds the same table and figure from
separate runs.

* `variants`: the ``--sweep`` values as the lab's own flags parse them, and the plan of child folders;
* `engine`: running the children and folds with the lab's ``main`` (resume keeps finished ones);
* `tables`: summaries of finished runs, the comparison tables and figure, and pieces of a preset's report.
"""
