"""Exercise checks: the cell after each exercise says ✓ or gives a hint that points to the lesson.

Course infrastructure, shared by every exercise notebook (DESIGN §9):

    from course.check import check

    with check("Exercise 1", hint="Lesson 02, section 1: make_circles, then torch.from_numpy(...).float()") as c:
        c.shape(X_train, (800, 2), "X_train")
        c.dtype(X_train, torch.float32, "X_train")
        c.at_least(test_acc, 96, "test accuracy (%)")

On success it prints one line, `✓ Exercise 1: X_train shape (800, 2); ...`.
On failure it raises `ExerciseCheckFailed`, which IPython shows as a short message, not a
traceback:

    ✗ Exercise 1: X_train has shape (1000, 2), expected (800, 2).
      Hint: Lesson 02, section 1: ...

A name the learner has not defined yet (a `NameError` inside the block) counts as "not
answered yet", and so does any other error the learner's objects raise while being checked:
the check names it and gives the hint. The exception stops only that cell, so a notebook
executed with errors allowed (papermill, nbclient) goes on to the next exercise.

Two helpers for what check cells often need:

- `c.figure(fig, "the scatter plot", labels=True)` checks a matplotlib figure the learner kept
  (`fig = plt.figure()` / `fig, ax = plt.subplots()`): it exists, something is drawn on it,
  it has a title (and axis labels). What it plots can then be read back from `fig.axes`.
- `with seeded(0): expected = ...` computes a reference answer from a seed without moving the
  notebook's own random numbers: torch's CPU generator is put back as it was afterwards.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["ExerciseCheckFailed", "Checker", "check", "seeded"]


class ExerciseCheckFailed(AssertionError):
    """An exercise's check did not pass; the message says why and where in the lesson to look."""

    def __init__(self, name: str, problem: str, hint: str):
        self.name, self.problem, self.hint = name, problem, hint
        super().__init__(f"✗ {name}: {problem}\n  Hint: {hint}")

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return str(self).splitlines()


class _Failed(Exception):
    """A single failed condition inside a check block (turned into ExerciseCheckFailed on exit)."""


class Checker:
    """The object a `check(...)` block hands you; each method checks one thing and records it."""

    def __init__(self) -> None:
        self.passed: list[str] = []

    def true(self, condition: Any, message: str, ok: str | None = None) -> None:
        """Pass when `condition` is truthy; `message` says what is wrong when it is not."""
        if not bool(condition):
            raise _Failed(message)
        if ok:
            self.passed.append(ok)

    def equal(self, actual: Any, expected: Any, what: str) -> None:
        """`actual == expected` (plain Python values: ints, strings, tuples, lists)."""
        self.true(actual == expected, f"{what} is {actual!r}, expected {expected!r}.", f"{what} = {expected!r}")

    def close(self, actual: Any, expected: Any, what: str, *, atol: float = 1e-6, rtol: float = 1e-5) -> None:
        """Numbers or tensors/arrays equal within `atol + rtol * |expected|` everywhere."""
        import torch

        a = torch.as_tensor(actual, dtype=torch.float64).cpu() if not isinstance(actual, torch.Tensor) \
            else actual.detach().to("cpu", torch.float64)
        e = torch.as_tensor(expected, dtype=torch.float64).cpu() if not isinstance(expected, torch.Tensor) \
            else expected.detach().to("cpu", torch.float64)

        def number(t: torch.Tensor) -> str:  # an exact comparison shows every digit
            return repr(t.item()) if atol == 0 and rtol == 0 else f"{t.item():.6g}"

        if a.shape != e.shape:
            raise _Failed(f"{what} has shape {tuple(a.shape)}, expected {tuple(e.shape)}.")
        if not torch.allclose(a, e, atol=atol, rtol=rtol, equal_nan=False):
            worst = (a - e).abs().max().item()
            shown = f"{number(a)}, expected {number(e)}" if a.numel() == 1 else \
                f"off by up to {worst:.3g} (tolerance atol={atol:g}, rtol={rtol:g})"
            raise _Failed(f"{what} is {shown}.")
        self.passed.append(f"{what} ✓" if a.numel() > 1 else f"{what} = {number(a)}")

    def shape(self, tensor: Any, expected: tuple, what: str) -> None:
        """`tuple(tensor.shape) == expected`."""
        if not hasattr(tensor, "shape"):
            raise _Failed(f"{what} is a {type(tensor).__name__}, expected a tensor of shape {tuple(expected)}.")
        actual = tuple(tensor.shape)
        self.true(actual == tuple(expected), f"{what} has shape {actual}, expected {tuple(expected)}.",
                  f"{what} shape {tuple(expected)}")

    def dtype(self, tensor: Any, expected: Any, what: str) -> None:
        """`tensor.dtype == expected`."""
        actual = getattr(tensor, "dtype", type(tensor).__name__)
        self.true(actual == expected, f"{what} has dtype {actual}, expected {expected}.", f"{what} {expected}")

    def type(self, value: Any, expected: type | tuple, what: str) -> None:
        """`isinstance(value, expected)`."""
        names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
        self.true(isinstance(value, expected), f"{what} is a {type(value).__name__}, expected a {names}.",
                  f"{what} is a {names}")

    def at_least(self, value: Any, floor: float, what: str) -> None:
        """A number (e.g. an accuracy) that must clear a floor."""
        number = float(value)
        if math.isnan(number) or number < floor:
            raise _Failed(f"{what} is {number:.4g}, expected at least {floor:g}.")
        self.passed.append(f"{what} {number:.4g} ≥ {floor:g}")

    def at_most(self, value: Any, ceiling: float, what: str) -> None:
        """A number (e.g. a loss or an error) that must stay under a ceiling."""
        number = float(value)
        if math.isnan(number) or number > ceiling:
            raise _Failed(f"{what} is {number:.4g}, expected at most {ceiling:g}.")
        self.passed.append(f"{what} {number:.4g} ≤ {ceiling:g}")


    def figure(self, fig: Any, what: str, *, title: bool = True, labels: bool = False) -> None:
        """A matplotlib Figure (or one of its Axes) with something drawn on it.

        Args:
            fig: the learner's figure; an Axes or an array of Axes is accepted too.
            what: how the message names it, e.g. "fig_moons (the scatter plot)".
            title: demand a title: the figure's suptitle or any Axes title.
            labels: demand x and y labels on every Axes that has something drawn on it.
        """
        from matplotlib.axes import Axes
        from matplotlib.figure import Figure

        if isinstance(fig, Axes):
            fig = fig.figure
        elif not isinstance(fig, Figure) and hasattr(fig, "flat"):  # plt.subplots(2, 2)'s array of Axes
            first = next(iter(fig.flat), None)
            fig = first.figure if isinstance(first, Axes) else fig
        if not isinstance(fig, Figure):
            raise _Failed(f"{what} is a {type(fig).__name__}, expected a matplotlib Figure "
                          "(keep the one plt.subplots() returns; plt.show() returns None).")
        drawn = [ax for ax in fig.axes
                 if ax.lines or ax.collections or ax.patches or ax.images or ax.containers]
        if not drawn:
            raise _Failed(f"{what} has nothing drawn on it (no lines, points, bars or images).")
        titles = [fig.get_suptitle()] + [ax.get_title(loc) for ax in fig.axes for loc in ("center", "left", "right")]
        titles = [t for t in titles if t.strip()]
        if title and not titles:
            raise _Failed(f"{what} has no title: give it one with ax.set_title(...) or fig.suptitle(...).")
        if labels:
            for ax in drawn:
                if not (ax.get_xlabel().strip() and ax.get_ylabel().strip()):
                    name = ax.get_title() or f"Axes {fig.axes.index(ax)}"
                    raise _Failed(f"{what}: {name!r} lacks an axis label (x: {ax.get_xlabel()!r}, "
                                  f"y: {ax.get_ylabel()!r}); use ax.set_xlabel(...) and ax.set_ylabel(...).")
        shown = f", titled {titles[0]!r}" if titles else ""
        self.passed.append(f"{what} drawn{shown}")


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded with `seed`, then restore its state.

    A check cell uses it to rebuild the answer an exercise expects from a seed, without
    changing the random numbers the rest of the notebook draws.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


class check:
    """`with check(name, hint=...) as c:` — see the module docstring."""

    def __init__(self, name: str, *, hint: str, ok: str | None = None):
        if not hint:
            raise ValueError(f"check({name!r}) needs a hint= that points to the lesson section to re-read.")
        self.name, self.hint, self.ok = name, hint, ok
        self.checker = Checker()

    def __enter__(self) -> Checker:
        return self.checker

    def __exit__(self, kind, error, tb) -> bool:
        if error is None:
            done = self.ok or "; ".join(self.checker.passed) or "passed"
            print(f"✓ {self.name}: {done}")
            return False
        if isinstance(error, (KeyboardInterrupt, SystemExit, ExerciseCheckFailed)):
            return False
        if isinstance(error, _Failed):
            problem = str(error)
        elif isinstance(error, NameError):
            missing = getattr(error, "name", None) or str(error)
            problem = f"not answered yet: `{missing}` is not defined (run your answer cell first)."
        else:
            problem = f"checking your answer raised {type(error).__name__}: {error}"
        raise ExerciseCheckFailed(self.name, problem, self.hint) from None
