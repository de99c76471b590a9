"""pytest settings for the notebooks folder: nbval runs the lessons and the solutions, not the exercises.

An exercise notebook raises on purpose: each check cell fails with its hint until the learner
has answered. So nbval, which demands that a notebook runs without errors and matches its stored
outputs, must not collect notebooks/exercises/. tests/test_exercises.py executes them instead
(unanswered, errors allowed) and proves that every check fails with its hint and nothing else fails.
"""
collect_ignore_glob = ["exercises/*.ipynb"]
