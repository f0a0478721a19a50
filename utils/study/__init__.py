"""Your own study: from a task file to which approach, how many labels you still need, how valid it
is, and a methods paragraph.

    make study TASK=path/to/task.json                    # or: python -m utils.study --task path/to/task.json
    make study TASK=... STUDY_ARGS="--dry-run"           # the grid and its estimated time, nothing run
    make study REPLICATE=results/study-<task>            # rerun the bundle, check the tables come out the same

The study measures learning curves (TF-IDF, sentence embeddings, a fine-tuned encoder, zero-shot and
fine-tuned NLI) over doubling training sizes with at least 3 seeds each, on one held-out test split,
fits an inverse power law per approach to say how many labels reach a target F1 macro, back-tests
that fit, sets the cost (compute, annotation hours) beside the accuracy, checks F1 per group, and
writes report.html / report.md, a model card and a replication bundle to results/study-<task>/.
Every finished (approach, size, seed) cell is stored, so a stopped study resumes where it stopped.

Modules: options (the command line), grid (data, samples, the cell store), approaches (the recipes),
curves (intervals, fits, back-test), validity (groups, confusion), analysis (every table), plots,
report and writeup (the reports, methods paragraph, model card), replicate (the bundle), cli.
"""

from .options import APPROACH_KEYS, DEFAULT_SECONDS_PER_LABEL, StudyArguments, StudyError


def main(argv=None) -> int:
    """`python -m utils.study` with `argv` (default: the command line); returns the exit status."""
    from .cli import main as cli_main

    return cli_main(argv)


__all__ = ["APPROACH_KEYS", "DEFAULT_SECONDS_PER_LABEL", "StudyArguments", "StudyError", "main"]
