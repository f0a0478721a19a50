"""Self-checks at the end of each notebook: a question, the student's answer, right or wrong and why.

A self-check cell looks like this (on Colab `#@title` + `#@param` turn it into a form with a
drop-down list and hide the code; in Jupyter you edit the string):

    #@title Self-check 1: is your fine-tuned F1 macro above your TF-IDF baseline?
    answer = "(choose)"  #@param ["(choose)", "yes", "no"]
    utils.check(answer, expected="yes" if f1_bert > f1_tfidf else "no",
                why=f"Your fine-tuned model: {f1_bert:.3f}; TF-IDF: {f1_tfidf:.3f}.")

The expected answer is computed from the student's own results where the question is about them,
so the check is right for every run, including a run whose numbers differ from the instructor's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

UNANSWERED = "(choose)"


def _same(answer: object, expected: object, tolerance: float) -> bool:
    if isinstance(expected, bool) or isinstance(answer, bool):
        return isinstance(answer, bool) and isinstance(expected, bool) and answer == expected
    if isinstance(expected, (int, float)) and isinstance(answer, (int, float)):
        return math.isclose(float(answer), float(expected), rel_tol=0.0, abs_tol=tolerance)
    return str(answer).strip().lower() == str(expected).strip().lower()


def check(answer: object, expected: object, why: str, options: Sequence[object] | None = None,
          tolerance: float = 0.0) -> bool | None:
    """Say whether `answer` is right, and why; return True (right), False (wrong) or None (no answer yet).

    `expected` is the right answer (for a question about your results, computed from them);
    `why` explains it either way. `options`, when given, are the answers on offer: an answer
    outside them is reported as a typo rather than judged. Text answers ignore case and
    surrounding spaces; numbers count as equal within `tolerance`.
    """
    if options is not None and not any(_same(o, expected, tolerance) for o in options):
        raise ValueError(f"The expected answer {expected!r} is not one of the options {list(options)}: "
                         "fix the self-check's options.")
    if answer is None or (isinstance(answer, str) and answer.strip() in ("", UNANSWERED)):
        print(f"✏️  Not answered yet: choose an answer (on Colab, in the form; in Jupyter, replace "
              f"{UNANSWERED!r} in the code) and run this cell again.")
        return None
    if options is not None and not any(_same(answer, o, tolerance) for o in options):
        print(f"❓ {answer!r} is not one of the answers on offer: {', '.join(map(repr, options))}. "
              "Check the spelling and run this cell again.")
        return None
    right = _same(answer, expected, tolerance)
    print(f"{'✅ Right' if right else '❌ Not quite'}: the answer is {expected!r}. {why}")
    return right
