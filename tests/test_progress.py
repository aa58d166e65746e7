"""labkit.progress: a bar on a terminal, silence when stderr is not a terminal (CI logs) or when asked (--quiet).

The Jupyter case is in tests/test_notebooks.py (a real kernel).
"""

import io

import pytest

from labkit.progress import progress, set_quiet


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def loud():
    set_quiet(False)
    yield
    set_quiet(False)


@pytest.mark.parametrize("stream, quiet, shown", [
    (Terminal(), False, True),
    (Terminal(), True, False),     # --quiet
    (io.StringIO(), False, False),  # a pipe or a CI log file
])
def test_bar_only_on_a_terminal_and_not_quiet(monkeypatch, stream, quiet, shown):
    monkeypatch.setattr("sys.stderr", stream)
    set_quiet(quiet)
    assert list(progress(range(4), desc="counting", unit="img")) == [0, 1, 2, 3]  # the items pass through either way
    assert ("counting:" in stream.getvalue()) is shown
    if shown:
        assert "0/4" in stream.getvalue()


def test_total_and_unit_reach_the_bar(monkeypatch):
    stream = Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    bar = progress(iter("abc"), desc="files", total=3, unit="file")
    assert (bar.total, bar.unit, bar.disable) == (3, "file", False)
    assert list(bar) == ["a", "b", "c"]


def test_set_quiet_is_process_wide():
    set_quiet(True)
    assert progress(range(2)).disable is True
