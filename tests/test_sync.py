"""The %%writefile sync check (DESIGN §4): passes on the repository, fails on every kind of drift."""
import json
from pathlib import Path

import pytest

from course.sync import REPO_ROOT, check_sync, writefile_cells


def write_notebook(path: Path, *sources: str) -> Path:
    """A minimal .ipynb whose code cells hold the given sources."""
    cells = [
        {"id": f"cell-{i}", "cell_type": "code", "metadata": {}, "execution_count": None,
         "outputs": [], "source": source.splitlines(keepends=True)}
        for i, source in enumerate(sources)
    ]
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    """notebooks/01_x.ipynb writes going_modular/helpers.py, and the committed file matches."""
    write_notebook(
        tmp_path / "notebooks" / "01_x.ipynb",
        "print('not a writefile cell')",
        "%%writefile ../going_modular/helpers.py\n# Written by notebooks/01_x.ipynb\nX = 1",
    )
    (tmp_path / "going_modular").mkdir()
    (tmp_path / "going_modular" / "helpers.py").write_text("# Written by notebooks/01_x.ipynb\nX = 1\n")
    return tmp_path


def test_repository_is_in_sync():
    problems = check_sync(REPO_ROOT)
    assert problems == [], "\n".join(problems)


def test_every_package_module_names_its_notebook():
    owners = {}
    for notebook in (REPO_ROOT / "notebooks").rglob("*.ipynb"):
        if ".ipynb_checkpoints" in notebook.parts:  # JupyterLab's copies, not lessons
            continue
        for cell in writefile_cells(notebook):
            owners[cell.target] = notebook
    for path, notebook in owners.items():
        if path.parent.name == "going_modular":
            first = path.read_text(encoding="utf-8").splitlines()[0]
            assert notebook.relative_to(REPO_ROOT).as_posix() in first, f"{path.name}: header {first!r}"


def test_tiny_repo_in_sync(tiny_repo):
    assert check_sync(tiny_repo) == []


def test_drift_is_reported(tiny_repo):
    (tiny_repo / "going_modular" / "helpers.py").write_text("# Written by notebooks/01_x.ipynb\nX = 2\n")
    problems = check_sync(tiny_repo)
    assert len(problems) == 1
    assert "going_modular/helpers.py: differs from notebooks/01_x.ipynb cell 1" in problems[0]


def test_missing_file_is_reported(tiny_repo):
    (tiny_repo / "going_modular" / "helpers.py").unlink()
    problems = check_sync(tiny_repo)
    assert len(problems) == 1
    assert "writes going_modular/helpers.py, which is not committed" in problems[0]


def test_unowned_file_is_reported(tiny_repo):
    (tiny_repo / "going_modular" / "stray.py").write_text("Y = 1\n")
    problems = check_sync(tiny_repo)
    assert problems == ["going_modular/stray.py: no notebook writes this file (DESIGN §4)"]


def test_append_is_reported(tiny_repo):
    write_notebook(tiny_repo / "notebooks" / "02_y.ipynb", "%%writefile -a ../going_modular/helpers.py\nZ = 3")
    problems = check_sync(tiny_repo)
    assert any("02_y.ipynb cell 0: '%%writefile -a' appends" in p for p in problems), problems


def test_two_owners_are_reported(tiny_repo):
    write_notebook(
        tiny_repo / "notebooks" / "solutions" / "01_x_solutions.ipynb",
        "%%writefile ../../going_modular/helpers.py\n# Written by notebooks/01_x.ipynb\nX = 1",
    )
    problems = check_sync(tiny_repo)
    assert len(problems) == 1 and "exactly one cell may own a file" in problems[0]


def test_trailing_newline_matches_ipython(tiny_repo):
    # IPython's %%writefile ends the file with one newline even when the cell has none.
    (tiny_repo / "going_modular" / "helpers.py").write_text("# Written by notebooks/01_x.ipynb\nX = 1")
    assert "differs from" in check_sync(tiny_repo)[0]


def test_unreadable_target_is_an_error(tmp_path):
    nb = write_notebook(tmp_path / "notebooks" / "03_z.ipynb", "%%writefile\nX = 1")
    with pytest.raises(ValueError, match="cannot read a target path"):
        writefile_cells(nb)
