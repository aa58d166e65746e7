"""`labkit.lab.begin`, the opening of every lab's main: demo notice, flags kept aside, several runs handed over."""

import json

from labkit import flags, lab

COURSE = {"epochs": 150, "lr": 1e-4}
DEMO = {"epochs": 2}


def parse_args(argv):
    return flags.lab_parser("a lab", COURSE).parse_args(argv)


def not_called(argv=None):
    raise AssertionError("a single run does not re-enter main")


def test_begin_prints_the_demo_profile_and_keeps_the_flags_out_of_the_settings(tmp_path, capsys):
    settings, run = lab.begin(not_called, ["--out", str(tmp_path / "run"), "--lr", "0.01"], lab.Lab(
        "a_lab", parse_args, COURSE, DEMO, lambda s: f"{s.epochs} epochs at lr {s.lr}.",
        "python a_lab.py --data-dir D"))
    assert settings.demo and (settings.epochs, settings.lr) == (2, 0.01)  # demo over course, the flag over both
    assert "demo profile: 2 epochs at lr 0.01. Course settings on real data: python a_lab.py --data-dir D" in \
        capsys.readouterr().out
    assert settings.flags.lr == 0.01 and settings.flags.epochs is None  # the flags as typed
    assert "flags" not in vars(settings)
    lab.save_config(run, settings, "data", 0)
    assert "flags" not in json.loads(run.file("config.json").read_text())["settings"]


def test_begin_takes_course_and_demo_from_the_flags(tmp_path, capsys):
    seen = []
    course = lambda args: seen.append(args.lr) or {**COURSE, "epochs": 7}  # noqa: E731
    settings, _ = lab.begin(not_called, ["--out", str(tmp_path / "run"), "--lr", "0.5"],
                            lab.Lab("a_lab", parse_args, course, lambda args: None, lambda s: "never shown"))
    assert seen == [0.5] and settings.epochs == 7
    assert not settings.demo and "demo profile" not in capsys.readouterr().out  # no demo profile for this run


def test_begin_hands_a_sweep_to_labkit_compare_and_returns_nothing(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("labkit.multirun.engine.run_many", lambda main, parser, args, argv, preset: calls.append(argv))
    argv = ["--out", str(tmp_path / "sweep"), "--sweep", "lr=0.1,0.2"]
    assert lab.begin(not_called, argv, lab.Lab("a_lab", parse_args, COURSE, DEMO)) == (None, None)
    assert calls == [argv] and not (tmp_path / "sweep").exists()


def test_a_demo_text_template_is_filled_from_the_settings(tmp_path, capsys):
    lab.begin(not_called, ["--out", str(tmp_path / "run")], lab.Lab("a_lab", parse_args, COURSE, DEMO,
                                                                  "{epochs} epochs at lr {lr}."))
    assert "demo profile: 2 epochs at lr 0.0001.\n" in capsys.readouterr().out


def test_every_demo_setting_is_a_flag_of_its_lab_or_read_by_it():
    """A demo profile sets flags of its lab and data sizes its lab reads (``settings.n_images``). Any other key (say
    "lr_schedule" in a lab without --lr-schedule) would be stored in config.json and silently ignored."""
    from conftest import ROOT, load_lab

    ignored = {}
    for path in sorted((ROOT / "labs").glob("*.py")):
        script = load_lab(path.stem)
        if isinstance(getattr(script, "DEMO", None), dict):
            given, source = vars(script.parse_args([])), path.read_text()
            ignored[path.stem] = [key for key in script.DEMO if key not in given and f"settings.{key}" not in source]
    assert len(ignored) >= 10 and not any(ignored.values()), ignored
