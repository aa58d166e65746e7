"""The ``labkit`` console command (installed with the package)::

    labkit compare RUN_DIR... [--out DIR]
    labkit predict RUN_DIR INPUT... --out DIR
    labkit evaluate RUN_DIR... --data-dir TEST [--out DIR]

``compare`` builds one comparison table and figure from finished run folders, as a multi-run builds them for its
children (`labkit.multirun.tables`); ``predict`` and ``evaluate`` use finished runs (`labkit.trained.commands`).
The lab scripts' own flags live in `labkit.flags`, their run lifecycle in `labkit.lab`.
"""

import sys
from pathlib import Path

from labkit.errors import LabkitInputError, require
from labkit.flags import LabArgumentParser
from labkit.multirun.tables import summarize_run, write_comparison
from labkit.run_folder import RunFolder, default_run_dir
from labkit.trained import commands as trained


def main(argv=None):
    """The ``labkit`` console script; returns its exit code (0 done, 2 bad input)."""
    parser = LabArgumentParser(prog="labkit", description="labkit command-line tools")
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="one comparison table and figure of finished run folders")
    compare.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="finished run folders (each with "
                         "metrics.json), e.g. one per task of a lab")
    compare.add_argument("--out", type=Path, help="where comparison.csv/.md/.png and metrics.json go (default: "
                         "runs/compare-<timestamp>)")
    compare.error = parser.error
    trained.add_commands(commands, parser.error)
    args = parser.parse_args(argv)
    if args.command in trained.COMMANDS:
        return trained.run(args)
    return compare_runs(args)


def compare_runs(args):
    """``labkit compare``: one table, figure and metrics.json of the finished runs ``args.runs`` in ``args.out``."""
    try:
        summaries = [summarize_run(p) for p in args.runs]
        names = [s["name"] for s in summaries]
        require(len(set(names)) == len(names), f"two runs share the folder name {names}: names label the rows")
        run = RunFolder(args.out or default_run_dir("compare"))
        run.path.mkdir(parents=True, exist_ok=True)
        metrics = write_comparison(run, summaries)
        run.write_json("metrics.json", {**metrics, "runs": [str(p) for p in args.runs]})
    except LabkitInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(run.file("comparison.md").read_text())
    print(f"winner (best {metrics['monitor']}): {metrics['winner']}\nwritten to {run.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
