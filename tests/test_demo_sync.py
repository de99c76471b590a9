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
    assert set(owned) == {"app.py", "model.py", "requirements.txt", "README.md", ".gitignore"}, sorted(owned)
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
            lines = cell.body.splitlines()
            first = lines.index("---", 1) + 1 if cell.target.name == "README.md" else 0  # after the Space's front matter
            assert "Written by notebooks/09_pytorch_model_deployment.ipynb" in lines[first], cell.target.name


def test_space_python_version_meets_every_pin():
    """The README's front matter asks the Space for a Python that every pinned package supports.

    Requires-Python is read from the installed distributions, which must be the pinned versions.
    """
    from importlib.metadata import metadata, version

    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    readme = (DEMO / "README.md").read_text(encoding="utf-8")
    front = readme.split("---\n")[1]
    config = dict(line.split(": ", 1) for line in front.strip().splitlines())
    assert "python_version" in config, "the Space would pick its default Python: set python_version in the front matter"
    python = Version(config["python_version"].strip("\"'"))
    pins = [line.split("==") for line in (DEMO / "requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    for name, pinned in pins:
        assert version(name) == pinned, f"{name} {version(name)} is installed, the app pins {pinned}: pip install -r"
        requires = SpecifierSet(metadata(name).get("Requires-Python") or "")
        assert python in requires, f"{name}=={pinned} requires Python {requires}; the README asks for {python}"
    assert config["sdk_version"] == dict(pins)["gradio"], "the Space's Gradio must be the pinned one"


def test_the_app_folder_keeps_caches_out_of_an_upload():
    ignored = (DEMO / ".gitignore").read_text().splitlines()
    for pattern in ("__pycache__/", ".gradio/", "flagged/"):
        assert pattern in ignored, f"{pattern} would be uploaded to the Space"
    readme = (DEMO / "README.md").read_text(encoding="utf-8")
    assert "upload_folder" in readme and "allow_patterns" in readme, "say how to publish only the app's files"
