"""Exercises check themselves, in both directions (DESIGN §6, course/check.py).

1. Every exercise notebook, executed unanswered (errors allowed, as papermill or nbclient do),
   fails each of its check cells with `ExerciseCheckFailed` and a hint, and fails nowhere else:
   no NameError, no traceback, no setup cell that breaks.
2. Every solution notebook passed each of the same check cells (✓) in its stored outputs;
   nbval re-executes the solutions against those outputs.

The exercise notebooks are not collected by nbval (notebooks/conftest.py); this file runs them.
It is parametrized over whatever notebooks/exercises/ holds, so a new lesson's pair is covered
as soon as it is added.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = sorted((ROOT / "notebooks" / "exercises").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
CHECK_NAME = re.compile(r"""with check\(\s*["']([^"']+)["']""")
EXERCISE_HEADING = re.compile(r"^#{2,4} +(Exercise \d+)\b", re.MULTILINE)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def solution_of(exercise: Path) -> Path:
    return ROOT / "notebooks" / "solutions" / exercise.name.replace("_exercises.ipynb", "_solutions.ipynb")


def code_cells(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def is_check(cell) -> bool:
    return cell.cell_type == "code" and "with check(" in cell.source


def check_cells(nb) -> list:
    return [cell for cell in nb.cells if is_check(cell)]


def errors(cell) -> list:
    return [out for out in cell.get("outputs", []) if out.output_type == "error"]


def text_of(out) -> str:
    """Everything an output shows, as plain text (ANSI colours removed)."""
    if out.output_type == "stream":
        text = out.text
    elif out.output_type == "error":
        text = "\n".join([out.ename, out.evalue, *out.traceback])
    else:
        text = str(out.get("data", {}).get("text/plain", ""))
    return ANSI.sub("", text)


def where(nb, cell) -> str:
    first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
    return f"cell {nb.cells.index(cell)} ({first[:70]!r})"


@functools.cache
def executed_unanswered(path: Path):
    """The exercise notebook executed as it is (unanswered), errors allowed, on the CPU."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_")}
    env.update(COURSE_DEVICE="cpu", CUDA_VISIBLE_DEVICES="", PYDEVD_DISABLE_FILE_VALIDATION="1",
               MPLBACKEND="module://matplotlib_inline.backend_inline")
    client = NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)  # a hung or dead kernel raises here, which fails the test
    return nb


@pytest.mark.parametrize("path", EXERCISES, ids=ids(EXERCISES))
def test_unanswered_exercises_fail_each_check_with_its_hint_and_nothing_else(path):
    nb = executed_unanswered(path)
    checks = check_cells(nb)
    assert checks, f"{path.name} has no check cell (a cell with `with check(...)`)"
    for cell in code_cells(nb):
        found = errors(cell)
        if is_check(cell):
            assert len(found) == 1, f"{path.name} {where(nb, cell)}: expected one failed check, got {found}"
            error = found[0]
            assert error.ename == "ExerciseCheckFailed", (
                f"{path.name} {where(nb, cell)} failed with {error.ename}: {error.evalue}")
            shown = text_of(error)
            name = CHECK_NAME.search(cell.source).group(1)
            assert f"✗ {name}: " in shown and "Hint: " in shown, f"{path.name} {where(nb, cell)}: {shown}"
        else:
            assert not found, (f"{path.name} {where(nb, cell)} is not a check cell but raised "
                               f"{found[0].ename}: {found[0].evalue}")
        for out in cell.get("outputs", []):
            shown = text_of(out)
            assert "Traceback" not in shown and "NameError" not in shown, (
                f"{path.name} {where(nb, cell)} shows a traceback or a NameError:\n{shown}")


@pytest.mark.parametrize("path", EXERCISES, ids=ids(EXERCISES))
def test_every_exercise_has_a_check_of_its_own(path):
    nb = nbformat.read(path, as_version=4)
    headings, current, checked = [], None, set()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for heading in EXERCISE_HEADING.findall(cell.source):
                headings.append(heading)
                current = heading
        elif is_check(cell):
            name = CHECK_NAME.search(cell.source)
            assert name, f"{path.name} {where(nb, cell)}: the check needs a literal name, check('Exercise N', ...)"
            assert current is not None and re.match(rf"{current}\b", name.group(1)), (
                f"{path.name} {where(nb, cell)}: check {name.group(1)!r} sits under {current!r}")
            checked.add(current)
    assert headings, f"{path.name} has no '## Exercise N' headings"
    missing = [h for h in headings if h not in checked]
    assert not missing, f"{path.name}: no check cell for {missing}"


@pytest.mark.parametrize("path", EXERCISES, ids=ids(EXERCISES))
def test_exercise_and_solution_share_their_check_cells(path):
    solution = solution_of(path)
    assert solution.exists(), f"{path.name} has no solution notebook at {solution.relative_to(ROOT)}"
    ours = [c.source for c in check_cells(nbformat.read(path, as_version=4))]
    theirs = [c.source for c in check_cells(nbformat.read(solution, as_version=4))]
    assert ours == theirs, f"the check cells of {path.name} and {solution.name} differ"


@pytest.mark.parametrize("path", EXERCISES, ids=ids(EXERCISES))
def test_exercise_notebooks_are_stored_as_an_unanswered_run(path):
    nb = nbformat.read(path, as_version=4)
    for cell in check_cells(nb):
        assert [e.ename for e in errors(cell)] == ["ExerciseCheckFailed"], (
            f"{path.name} {where(nb, cell)}: stored outputs should show the unanswered check failing; "
            "refresh with `python -m course refresh --only NN --all`")


@pytest.mark.parametrize("path", SOLUTIONS, ids=ids(SOLUTIONS))
def test_solutions_pass_every_check_in_their_stored_outputs(path):
    nb = nbformat.read(path, as_version=4)
    assert check_cells(nb), f"{path.name} has no check cell"
    for cell in code_cells(nb):
        assert cell.get("execution_count") is not None, (
            f"{path.name} {where(nb, cell)} has no stored outputs; refresh with `python -m course refresh --all`")
        assert not errors(cell), f"{path.name} {where(nb, cell)} stores an error: {errors(cell)[0].evalue}"
        assert not cell.source.lstrip().startswith("# TODO"), f"{path.name} {where(nb, cell)} is unanswered"
    for cell in check_cells(nb):
        name = CHECK_NAME.search(cell.source).group(1)
        shown = "".join(text_of(out) for out in cell.get("outputs", []))
        assert f"✓ {name}: " in shown, f"{path.name} {where(nb, cell)}: no '✓ {name}: ...' in {shown!r}"


HINT = re.compile(r"""hint=f?(["'])((?:(?!\1)[^\\]|\\.)*)\1""")
LESSON = re.compile(r"^Lesson (\d\d), sections? ")
HEADING_NUMBER = re.compile(r"^#{2,4} +(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)


def cited_sections(hint: str) -> tuple[str, list[str]] | None:
    """("05", ["10.5", "6.4"]) for "Lesson 05, sections 10.5 (a run) and 6.4: ...", or None if it cites none.

    Asides in parentheses are dropped, and the citation ends at the first colon, semicolon or full stop.
    """
    lesson = LESSON.match(hint)
    if not lesson:
        return None
    rest = hint[lesson.end():]
    while re.search(r"\([^()]*\)", rest):
        rest = re.sub(r"\([^()]*\)", "", rest)
    rest = re.split(r"[:;]|\.(?!\d)", rest)[0]
    numbers = [n for token in re.findall(r"\d+(?:\.\d+)*(?:-\d+)?", rest) for n in token.split("-")]
    return lesson.group(1), numbers


def lesson_sections(number: str) -> set[str] | None:
    """The section numbers ("3", "3.2", ...) of lesson `number`'s headings, or None if there is no such lesson."""
    found = sorted((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
    if not found:
        return None
    nb = nbformat.read(found[0], as_version=4)
    return {m for cell in nb.cells if cell.cell_type == "markdown" for m in HEADING_NUMBER.findall(cell.source)}


def test_cited_sections_reads_the_citation_and_nothing_after_it():
    assert cited_sections("Lesson 00, section 11.3 (.to(device)) and section 5.4 (transpose one); seed (1, 7)") == ("00", ["11.3", "5.4"])
    assert cited_sections("Lesson 08, sections 3-7 and 8.1: Linear(a, b) has a*b + b") == ("08", ["3", "7", "8.1"])
    assert cited_sections("Lesson 05, sections 8.2 (config.py: TrainConfig) and 10.3 (exit status 2).") == ("05", ["8.2", "10.3"])
    assert cited_sections("re-read the lesson") is None


@pytest.mark.parametrize("path", EXERCISES, ids=ids(EXERCISES))
def test_every_hint_cites_sections_its_lesson_has(path):
    nb = nbformat.read(path, as_version=4)
    for cell in check_cells(nb):
        hint = HINT.search(cell.source)
        assert hint, f"{path.name} {where(nb, cell)}: check(..., hint=\"Lesson NN, section N.M: ...\") needs a literal hint"
        cited = cited_sections(hint.group(2))
        assert cited and cited[1], f"{path.name} {where(nb, cell)}: the hint {hint.group(2)!r} should start 'Lesson NN, section N.M: ...'"
        lesson, numbers = cited
        sections = lesson_sections(lesson)
        assert sections is not None, f"{path.name} {where(nb, cell)}: the hint cites lesson {lesson}, which has no notebook"
        missing = [n for n in numbers if n not in sections]
        assert not missing, (f"{path.name} {where(nb, cell)}: the hint cites section(s) {missing} of lesson {lesson}, "
                             "which has no such heading")
