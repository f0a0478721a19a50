"""What a task description leaves out, generated from its label names and descriptions.

A description completes the sentence "the quote is about ...", e.g. "rents, building homes or
homelessness"; a label without one stands for itself, and a label called Other (or None) without
one for "none of these: <the other labels>". From that come the NLI hypotheses, the LLM's answer
words, instruction, short instruction and system message, and the annotation guidelines. They are
a start: the task's warning says which were generated, and a task file can give better ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .task import Task


def _other(label: str) -> bool:
    return label.lower() in ("other", "none")


def _what(task: Task, label: str) -> str:
    """What the label is about, to complete "the quote is about ...": its description, else its name
    (a label named Other or None, without a description: none of the other labels)."""
    if label in task.descriptions:
        return task.descriptions[label].rstrip(".")
    if _other(label):
        return "none of these: " + _or([other for other in task.labels if not _other(other)])
    return label


def _context_words(task: Task) -> str:
    """The context the task gives, in words ("" when none)."""
    if task.before_column and task.after_column:
        return "the sentences around it"
    return "the sentence before it" if task.before_column else "the sentence after it" if task.after_column else ""


def _default_hypotheses(task: Task) -> dict[str, str]:
    return {label: f"The quote is about {_what(task, label)}." for label in task.labels}


def _default_answers(task: Task) -> dict[str, str]:
    return {label: label.lower() for label in task.labels}


def _default_instruction(task: Task) -> str:
    options = ([f"{letter}) {task.answers[label]}: the quote is about {_what(task, label)}."
                for letter, label in task.letters.items()]
               or [f"- {task.answers[label]}: the quote is about {_what(task, label)}." for label in task.labels])
    context = _context_words(task)
    verb = "are" if context.startswith("the sentences") else "is"
    judge = (f"\n\nJudge the quote only. {context[0].upper() + context[1:]} {verb} there to help you understand it."
             if context else "")
    return (f"Below is a quote{' with ' + context if context else ''}. Decide which label fits the quote."
            "\n\nOptions:\n" + "\n".join(options) + judge)


def _default_short_instruction(task: Task) -> str:
    return f"Here is a quote. Which fits it best: {_or(list(task.answers.values()))}?"


def _default_system_prompt(task: Task) -> str:
    return "You are a careful annotator of texts. You follow the instructions exactly."


def _default_guidelines(task: Task) -> str:
    context = _context_words(task)
    intro = (f"Each record is one text (the **quote**), with {context} as **context**. Label the quote alone; the "
             "context only helps you read it." if context else "Each record is one text (the **quote**). Label it.")
    lines = [f"* **{label}** - the quote is about {_what(task, label)}." for label in task.labels]
    return (intro + "\n\n" + "\n".join(lines) + "\n\nThe pre-selected label is a model's suggestion, not the answer. "
            "Change it when you disagree, then press Submit. Discard a record you cannot judge.\n")


# Task field -> the function that generates it when a task leaves it out.
DEFAULTS: dict[str, Callable[[Task], object]] = {
    "hypotheses": _default_hypotheses, "answers": _default_answers, "instruction": _default_instruction,
    "short_instruction": _default_short_instruction, "system_prompt": _default_system_prompt,
    "guidelines": _default_guidelines,
}


def _or(words: list[str]) -> str:
    """'a, b or c'."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def answer_request(task: Task) -> str:
    """The prompt's last line: which words to answer with."""
    words = list(task.answers.values())
    one_word = all(len(word.split()) == 1 for word in words)
    return f"Answer with {'one word' if one_word else 'one of these'}: {_or(words)}."
