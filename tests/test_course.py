"""Course infrastructure: parameter resolution, lesson selection, and the papermill runner."""
import json
from pathlib import Path

import pytest
import torch

import course
from course import run as runner


def test_setup_uses_notebook_values_without_environment(monkeypatch, capsys):
    for name in ("COURSE_DEVICE", "COURSE_DATA", "COURSE_SEED"):
        monkeypatch.delenv(name, raising=False)
    settings = course.setup(device="cpu", data="offline", seed=7)
    assert settings.device == torch.device("cpu")
    assert (settings.data, settings.seed) == ("offline", 7)
    assert settings.sources == {"device": "parameters cell", "data": "parameters cell", "seed": "parameters cell"}
    out = capsys.readouterr().out
    assert "torch " in out and "seed:   7 (from parameters cell)" in out


def test_environment_overrides_and_is_reported(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_SEED", "123")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    settings = course.setup(device="auto", seed=42)
    assert settings.seed == 123 and settings.sources["seed"] == "COURSE_SEED"
    assert "seed:   123 (from COURSE_SEED)" in capsys.readouterr().out


def test_setup_seeds_torch(monkeypatch):
    monkeypatch.delenv("COURSE_SEED", raising=False)
    course.setup(device="cpu", seed=3)
    first = torch.rand(3)
    course.setup(device="cpu", seed=3)
    assert torch.equal(first, torch.rand(3))


@pytest.mark.parametrize(
    "env, value, message",
    [
        ("COURSE_DEVICE", "gpu", r"COURSE_DEVICE='gpu' is not one of auto, cpu, cuda"),
        ("COURSE_DATA", "online", r"COURSE_DATA='online' is not one of offline, real"),
        ("COURSE_SEED", "forty", r"COURSE_SEED='forty' is not a valid int"),
    ],
)
def test_bad_environment_values_name_the_variable(monkeypatch, env, value, message):
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=message):
        course.setup()


def test_bad_notebook_value_names_the_parameter(monkeypatch):
    monkeypatch.delenv("COURSE_DATA", raising=False)
    with pytest.raises(ValueError, match=r"DATA = 'Real' is not one of offline, real"):
        course.setup(data="Real")


def test_lesson_selection(tmp_path):
    for name in ("00_a.ipynb", "01_b.ipynb", "03_c.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in runner.lesson_notebooks(None, tmp_path)] == ["00_a.ipynb", "01_b.ipynb", "03_c.ipynb"]
    assert [p.name for p in runner.lesson_notebooks("3,0", tmp_path)] == ["03_c.ipynb", "00_a.ipynb"]
    with pytest.raises(SystemExit, match="no lesson numbered '07'; lessons here are 00, 01, 03"):
        runner.lesson_notebooks("07", tmp_path)


def notebook(path: Path, *sources: str) -> Path:
    cells = [{"id": f"cell-{i}", "cell_type": "code", "metadata": {}, "execution_count": None,
              "outputs": [], "source": s} for i, s in enumerate(sources)]
    cells[0]["metadata"]["tags"] = ["parameters"]
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    path.write_text(json.dumps({"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_runner_executes_in_notebook_folder_and_names_failing_cell(tmp_path, monkeypatch, capsys):
    """Real papermill runs: parameters reach the kernel, cwd is the notebook's folder, sources untouched."""
    monkeypatch.setattr(runner.os, "environ", dict(runner.os.environ))  # keep COURSE_* changes local
    src = tmp_path / "src"
    src.mkdir()
    good = notebook(src / "00_good.ipynb", 'DEVICE = "auto"\nDATA = "offline"',
                    "import os\nopen('cwd.txt', 'w').write(os.getcwd() + ' ' + DEVICE + ' ' + os.environ['COURSE_DATA'])")
    bad = notebook(src / "01_bad.ipynb", 'DEVICE = "auto"', "x = 1", "raise ValueError('broken on purpose')")
    before = bad.read_bytes()
    results = runner.run_lessons([good, bad], device="cpu", data="offline", output=tmp_path / "out")
    runner.print_summary(results, tmp_path / "out")

    assert [r.status for r in results] == ["ok", "FAILED"]
    assert (src / "cwd.txt").read_text() == f"{src} cpu offline"
    assert "raised ValueError: broken on purpose" in results[1].detail
    assert "raise ValueError('broken on purpose')" in results[1].detail
    assert bad.read_bytes() == before, "the runner must never modify a source notebook"
    assert (tmp_path / "out" / "00_good.ipynb").exists()
    assert results[0].peak_mib > 10, "the kernel's memory was not sampled"
    out = capsys.readouterr().out
    assert "FAILED 01_bad.ipynb" in out and "peak MiB" in out


def test_course_and_package_import_from_any_folder(tmp_path):
    """The editable install must expose real packages, not empty namespace packages."""
    import subprocess
    import sys

    code = "import course, going_modular.runtime; print(course.setup.__name__, going_modular.runtime.get_device('cpu'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["setup", "cpu"]


def outputs_text(cell: dict) -> str:
    """The stream text of a stored cell (nbformat stores it as a string or a list of lines)."""
    text = [out["text"] for out in cell.get("outputs", []) if out["output_type"] == "stream"]
    return "".join("".join(t) if isinstance(t, list) else t for t in text)


def test_refresh_stores_a_learners_default_run(tmp_path, monkeypatch, capsys):
    """COURSE_* set in the maintainer's shell must not reach the kernel; "auto" must land on the CPU."""
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.setenv("COURSE_DATA", "real")
    monkeypatch.setenv("COURSE_SEED", "7")
    monkeypatch.setattr(runner, "REPO_ROOT", tmp_path)
    lesson = notebook(tmp_path / "00_setup.ipynb", 'DEVICE = "auto"\nDATA = "offline"\nSEED = 42',
                      "import course\nrun = course.setup(device=DEVICE, data=DATA, seed=SEED)",
                      "import os, torch\nprint('cuda visible:', torch.cuda.is_available(), "
                      "repr(os.environ.get('CUDA_VISIBLE_DEVICES')))")
    assert runner.refresh([lesson]) == 0
    cells = json.loads(lesson.read_text())["cells"]
    setup_out = outputs_text(cells[1])
    assert "device: cpu (CPU; 'auto' from parameters cell)" in setup_out
    assert "data:   offline (from parameters cell)" in setup_out
    assert "seed:   42 (from parameters cell)" in setup_out
    assert "COURSE_" not in setup_out
    assert outputs_text(cells[2]).strip() == "cuda visible: False ''"
    assert "refreshed 00_setup.ipynb" in capsys.readouterr().out


def test_refresh_allows_errors_only_in_exercise_notebooks(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "REPO_ROOT", tmp_path)
    (tmp_path / "exercises").mkdir()
    (tmp_path / "solutions").mkdir()
    cells = ("SEED = 42", "raise ValueError('not answered yet')", "print('later cells still run')")
    exercise = notebook(tmp_path / "exercises" / "00_x_exercises.ipynb", *cells)
    solution = notebook(tmp_path / "solutions" / "00_x_solutions.ipynb", *cells)
    lesson = notebook(tmp_path / "00_x.ipynb", *cells)
    before = {p: p.read_bytes() for p in (solution, lesson)}

    assert runner.refresh([exercise, solution, lesson]) == 1
    stored = json.loads(exercise.read_text())["cells"]
    assert stored[1]["outputs"][0]["output_type"] == "error"
    assert stored[1]["outputs"][0]["evalue"] == "not answered yet"
    assert outputs_text(stored[2]).strip() == "later cells still run"
    for path, content in before.items():
        assert path.read_bytes() == content, f"{path.name} raised, so it must be left exactly as it was"
    out = capsys.readouterr().out
    assert "refreshed exercises/00_x_exercises.ipynb" in out
    assert "FAILED solutions/00_x_solutions.ipynb" in out and "FAILED 00_x.ipynb" in out


def test_refresh_environment_drops_parameters_and_hides_gpus():
    env = runner.refresh_environment({"COURSE_DEVICE": "cuda", "COURSE_DATA": "real", "COURSE_SEED": "1",
                                      "CUDA_VISIBLE_DEVICES": "0", "PATH": "/bin"})
    assert not any(key in env for key in runner.PARAMETER_VARIABLES)
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["PATH"] == "/bin"


def test_main_dispatches_each_command(monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "refresh", lambda notebooks: calls.append([p.name for p in notebooks]) or 0)
    assert runner.main(["refresh", "--only", "00"]) == 0
    assert calls == [["00_pytorch_fundamentals.ipynb"]]
