"""demos/foodvision_mini/ is written by lesson 09's %%writefile cells, byte for byte (DESIGN §4).

`course/sync.py` (python -m course sync) already compares every %%writefile cell with the file it
writes, wherever it is; its "unowned file" check covers going_modular/ only. This test adds it
for the app folder: each of its source files is owned by one cell of lesson 09 and matches it, and
the folder holds nothing else but what the lesson makes at run time (the model file, the examples).
"""
from __future__ import annotations

from pathlib import Path

from course.sync import writefile_cells

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demos" / "foodvision_mini"
LESSON = ROOT / "notebooks" / "09_pytorch_model_deployment.ipynb"
MADE_AT_RUN_TIME = {"foodvision_mini.onnx", "examples", "__pycache__", ".gradio", "flagged"}


def test_every_app_file_is_written_by_one_cell_of_lesson_09_and_matches_it():
    cells = [c for c in writefile_cells(LESSON) if c.target.is_relative_to(DEMO)]
    owned = {c.target.relative_to(DEMO).as_posix(): c for c in cells}
    assert len(owned) == len(cells), "one file is written by two cells"
    assert set(owned) == {"app.py", "model.py", "requirements.txt", "README.md"}, sorted(owned)
    for name, cell in owned.items():
        assert (DEMO / name).read_text(encoding="utf-8") == cell.body, (
            f"demos/foodvision_mini/{name} differs from lesson 09 cell {cell.cell_index}: edit the notebook and re-run it")


def test_the_app_folder_holds_only_owned_files_and_run_time_outputs():
    owned = {c.target.name for c in writefile_cells(LESSON) if c.target.parent == DEMO}
    extra = [p.name for p in DEMO.iterdir() if p.name not in owned | MADE_AT_RUN_TIME]
    assert not extra, f"demos/foodvision_mini/ holds files no lesson cell writes: {extra}"


def test_written_files_start_with_the_header_naming_the_lesson():
    for cell in writefile_cells(LESSON):
        if cell.target.is_relative_to(DEMO) or cell.target.parent.name == "going_modular":
            assert "Written by notebooks/09_pytorch_model_deployment.ipynb" in cell.body.splitlines()[
                8 if cell.target.name == "README.md" else 0], cell.target.name
