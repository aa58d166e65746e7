"""The README's "Using labkit in Jupyter" example runs as written, in a Jupyter kernel, and draws its figure inline.

The example is the ```python block between ``<!-- jupyter-example:start -->`` and ``<!-- jupyter-example:end -->``
in README.md.
"""

import re
from pathlib import Path

import nbformat
import pytest

try:
    from test_notebooks import execute_notebook
except ImportError:  # tests/ became a package
    from tests.test_notebooks import execute_notebook

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- jupyter-example:start -->", "<!-- jupyter-example:end -->"


def jupyter_example(text):
    """The code of the ```python block between the jupyter-example markers of a README text."""
    assert text.count(START) == 1 and text.count(END) == 1, f"README.md needs one {START} … {END} section"
    section = text[text.index(START) + len(START): text.index(END)]
    blocks = re.findall(r"^```python\n(.*?)^```", section, flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1, "the jupyter-example section needs exactly one ```python code block"
    return blocks[0].rstrip("\n")


def test_extracts_the_marked_block_only():
    text = f"# t\n```python\nnot this\n```\n{START}\nIn a notebook:\n\n```python\na = 1\nb = 2\n```\n{END}\n"
    assert jupyter_example(text) == "a = 1\nb = 2"
    with pytest.raises(AssertionError, match="needs one"):
        jupyter_example("no markers")


def test_example_is_five_lines():
    assert README.is_file(), "README.md is missing"
    lines = [line for line in jupyter_example(README.read_text()).splitlines() if line.strip()]
    assert len(lines) == 5, lines


@pytest.mark.slow
def test_example_runs_as_written_in_a_kernel(tmp_path):
    code = jupyter_example(README.read_text())
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(code),
        nbformat.v4.new_code_cell("print(sorted(history.history), len(history.history['loss']))"),
    ])
    execute_notebook(notebook, cwd=tmp_path, timeout=300)
    example, check = notebook.cells
    assert any("image/png" in output.get("data", {}) for output in example.outputs), \
        "the example's last line should draw a figure inline"
    assert check.outputs[-1].text.strip() == "['dice_coef', 'loss', 'val_dice_coef', 'val_loss'] 2"
