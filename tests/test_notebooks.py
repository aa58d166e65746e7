"""Every notebook under notebooks/ runs top to bottom in a Jupyter kernel, on the embedded data with tiny settings.

Convention for notebooks (checked here): stored without outputs; the settings live in one code cell tagged
``parameters`` (papermill's convention). The test injects a cell right after it that overrides the names of
`TINY_SETTINGS` the notebook assigns there, so CI runs each notebook in seconds while students keep useful defaults.
The kernel is this interpreter (the venv's), whatever other ``python3`` kernelspecs the machine has.
"""

import ast
import inspect
import os
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

#: Progress bars a notebook must show in its output (its long steps that are not Keras fit/predict).
EXPECTED_PROGRESS = {"lab4_unet.ipynb": ["loading images"]}

#: Tiny values for the settings the notebooks share; a notebook gets those its parameters cell assigns. A notebook
#: with settings of its own (e.g. a number of volumes) adds their tiny values here.
TINY_SETTINGS = {"N_IMAGES": 12, "IMG_SIZE": 32, "EPOCHS": 1, "BATCH_SIZE": 4, "BASE": 4}


class ThisInterpreterKernel(KernelManager):
    """A kernel started with the Python running the tests (``sys.executable -m ipykernel_launcher``).

    The default ``python3`` kernelspec may come from another environment (a user-wide Jupyter, a system Python
    without labkit); this one always runs where labkit is installed. (ipykernel is not imported here: in the test
    process its presence would make labkit think it runs inside Jupyter.)
    """

    @property
    def kernel_spec(self):
        return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          display_name=f"Python ({sys.executable})", language="python", resource_dir="")


def kernel_env():
    """The test process's environment minus MPLBACKEND, so matplotlib in the kernel behaves as in Jupyter."""
    return {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}


def execute_notebook(notebook, cwd, timeout=600):
    """Run every cell of `notebook` (in place) in a fresh kernel; raises `CellExecutionError` when a cell fails."""
    client = NotebookClient(notebook, km=ThisInterpreterKernel(), timeout=timeout,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(env=kernel_env())
    return notebook


def parameters_cell(notebook):
    """Index of the code cell tagged ``parameters``."""
    tagged = [i for i, cell in enumerate(notebook.cells)
              if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "tag exactly one code cell 'parameters' (the settings) so CI can run it with tiny values"
    return tagged[0]


def assigned_names(source):
    return {target.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def with_tiny_settings(notebook):
    """A copy of `notebook` with a cell after the parameters cell that sets `TINY_SETTINGS` (where assigned)."""
    notebook = nbformat.from_dict(notebook)
    index = parameters_cell(notebook)
    names = assigned_names(notebook.cells[index].source)
    overrides = "\n".join(f"{name} = {value!r}" for name, value in TINY_SETTINGS.items() if name in names)
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(f"# injected by tests/test_notebooks.py\n{overrides}"))
    return notebook


def plotting_names():
    """Public functions of labkit.plots and labkit.gradcam that return a Figure (they take ``save_to``)."""
    from labkit import gradcam, plots

    return {name for module in (plots, gradcam) for name, fn in inspect.getmembers(module, inspect.isfunction)
            if not name.startswith("_") and "save_to" in inspect.signature(fn).parameters}


def ends_with_figure(source, names):
    """True when the cell's last statement is a bare call of a plotting function (Jupyter displays its value)."""
    body = ast.parse(source).body
    last = body[-1] if body else None
    return (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) and isinstance(last.value.func, ast.Name)
            and last.value.func.id in names)


def test_there_are_notebooks():
    assert "lab4_unet.ipynb" in [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean_with_a_parameters_cell(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code), \
        f"{path.name} is stored with outputs: clear them before committing"
    settings = assigned_names(notebook.cells[parameters_cell(notebook)].source)
    assert settings & set(TINY_SETTINGS), f"{path.name}: the parameters cell sets none of {sorted(TINY_SETTINGS)}"


def test_tiny_settings_override_only_assigned_names():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# t"),
        nbformat.v4.new_code_cell("EPOCHS = 150\nIMG_SIZE = 256\nLOSS = 'dice'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(EPOCHS)"),
    ])
    cells = with_tiny_settings(notebook).cells
    assert cells[2].source == "# injected by tests/test_notebooks.py\nIMG_SIZE = 32\nEPOCHS = 1"
    assert cells[3].source == "print(EPOCHS)" and len(notebook.cells) == 3  # the original is left alone


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, tmp_path):
    notebook = execute_notebook(with_tiny_settings(nbformat.read(path, as_version=4)), cwd=tmp_path)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors
    names = plotting_names()
    figure_cells = [cell for cell in code if ends_with_figure(cell.source, names)]
    assert figure_cells, f"{path.name} shows no figure"
    for cell in figure_cells:  # a returned Figure is drawn inline as a PNG, not printed as "<Figure …>"
        assert any("image/png" in o.get("data", {}) for o in cell.outputs), f"no image drawn by:\n{cell.source}"
    stderr = "".join(o.text for cell in code for o in cell.outputs if o.get("name") == "stderr")
    for label in EXPECTED_PROGRESS.get(path.name, []):  # labkit's bars show in Jupyter (stderr is not a terminal)
        assert f"{label}:   0%" in stderr, f"no '{label}' progress bar in the output of {path.name}"


def test_kernel_runs_this_interpreter(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.executable)")])
    execute_notebook(notebook, cwd=tmp_path, timeout=120)
    assert notebook.cells[0].outputs[-1].text.strip() == sys.executable
