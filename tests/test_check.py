"""The exercise check helper: ✓ on success, a hint (never a traceback) on failure."""
import pytest
import torch

from course.check import ExerciseCheckFailed, check, seeded


def test_success_prints_what_passed(capsys):
    with check("Exercise 1", hint="Lesson 00, section 2") as c:
        c.shape(torch.zeros(2, 3), (2, 3), "x")
        c.dtype(torch.zeros(1), torch.float32, "x")
        c.at_least(97.0, 96, "test accuracy")
        c.close(torch.tensor([1.0, 2.0]), [1.0, 2.0], "values")
    out = capsys.readouterr().out
    assert out.startswith("✓ Exercise 1: x shape (2, 3); x torch.float32; test accuracy 97 ≥ 96")


def test_undefined_name_is_not_answered_yet():
    with pytest.raises(ExerciseCheckFailed, match=r"not answered yet: `learner_tensor` is not defined") as info:
        with check("Exercise 2", hint="Lesson 00, section 3: torch.rand"):
            learner_tensor  # noqa: B018, F821
    assert info.value.hint == "Lesson 00, section 3: torch.rand"
    assert info.value._render_traceback_() == [
        "✗ Exercise 2: not answered yet: `learner_tensor` is not defined (run your answer cell first).",
        "  Hint: Lesson 00, section 3: torch.rand",
    ]


@pytest.mark.parametrize("call, message", [
    (lambda c: c.shape(torch.zeros(3), (2,), "x"), r"x has shape \(3,\), expected \(2,\)"),
    (lambda c: c.shape([1, 2], (2,), "x"), r"x is a list, expected a tensor of shape \(2,\)"),
    (lambda c: c.dtype(torch.zeros(1, dtype=torch.int64), torch.float32, "x"), "x has dtype torch.int64, expected torch.float32"),
    (lambda c: c.at_least(0.5, 0.9, "acc"), "acc is 0.5, expected at least 0.9"),
    (lambda c: c.at_least(float("nan"), 0.9, "acc"), "acc is nan, expected at least 0.9"),
    (lambda c: c.at_most(2.0, 1.0, "loss"), "loss is 2, expected at most 1"),
    (lambda c: c.close(1.5, 1.0, "mean"), "mean is 1.5, expected 1"),
    (lambda c: c.close(torch.ones(2), torch.zeros(3), "v"), r"v has shape \(2,\), expected \(3,\)"),
    (lambda c: c.close(torch.ones(2), torch.zeros(2), "v"), "v is off by up to 1"),
    (lambda c: c.equal("a", "b", "name"), "name is 'a', expected 'b'"),
    (lambda c: c.type(3, str, "name"), "name is a int, expected a str"),
    (lambda c: c.true(False, "model is not in eval mode"), "model is not in eval mode"),
])
def test_each_failure_names_the_problem_and_the_hint(call, message):
    with pytest.raises(ExerciseCheckFailed, match=message) as info:
        with check("Exercise 3", hint="see section 4") as c:
            call(c)
    assert str(info.value).endswith("Hint: see section 4")


def test_other_errors_become_a_failed_check_with_the_hint():
    with pytest.raises(ExerciseCheckFailed, match=r"(?s)raised TypeError: .*Hint: section 5"):
        with check("Exercise 4", hint="section 5"):
            len(5)


def test_a_check_needs_a_hint():
    with pytest.raises(ValueError, match="needs a hint="):
        check("Exercise 5", hint="")


def test_figure_passes_a_titled_labelled_plot(capsys):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.scatter([0, 1], [1, 0])
    ax.set(title="two points", xlabel="x", ylabel="y")
    with check("Exercise 6", hint="section 2") as c:
        c.figure(fig, "fig", labels=True)
        c.figure(ax, "its Axes")
    plt.close(fig)
    assert capsys.readouterr().out == "✓ Exercise 6: fig drawn, titled 'two points'; its Axes drawn, titled 'two points'\n"


@pytest.mark.parametrize("make, message", [
    (lambda plt: None, r"fig is a NoneType, expected a matplotlib Figure .*plt.show\(\) returns None"),
    (lambda plt: plt.subplots()[0], "fig has nothing drawn on it"),
    (lambda plt: plt.subplots()[1].plot([1, 2])[0].figure, "fig has no title"),
    (lambda plt: _titled_bar(plt), r"fig: 'bars' lacks an axis label \(x: 'class', y: ''\)"),
])
def test_figure_failures_say_what_is_missing(make, message):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = make(plt)
    with pytest.raises(ExerciseCheckFailed, match=message):
        with check("Exercise 7", hint="section 3") as c:
            c.figure(fig, "fig", labels=True)
    plt.close("all")


def _titled_bar(plt):
    fig, ax = plt.subplots()
    ax.bar(["a", "b"], [1, 2])
    ax.set(title="bars", xlabel="class")
    return fig


def test_figure_accepts_an_array_of_axes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    axes[1].imshow([[0, 1], [1, 0]])
    fig.suptitle("grid")
    with check("Exercise 8", hint="section 4") as c:
        c.figure(axes, "axes")
    assert c.passed == ["axes drawn, titled 'grid'"]
    plt.close(fig)


def test_seeded_reproduces_a_seed_and_leaves_the_generator_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with seeded(0):
        inside = torch.rand(2)
    assert torch.equal(torch.rand(3), expected_next)  # the outer stream did not move
    torch.manual_seed(0)
    assert torch.equal(inside, torch.rand(2))  # the block drew what seed 0 draws


def test_an_exact_close_shows_every_digit(capsys):
    with check("Exercise 9", hint="section 3.3") as c:
        c.close(torch.tensor(0.1, dtype=torch.float32).item(), 0.10000000149011612, "kept", atol=0, rtol=0)
    assert capsys.readouterr().out == "✓ Exercise 9: kept = 0.10000000149011612\n"
    with pytest.raises(ExerciseCheckFailed, match=r"kept is 0\.1, expected 0\.10000000149011612\."):
        with check("Exercise 9", hint="section 3.3") as c:
            c.close(0.1, 0.10000000149011612, "kept", atol=0, rtol=0)
