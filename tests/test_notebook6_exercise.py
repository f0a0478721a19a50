"""Notebook 6, exercise 1's solution, run as written in the notebook against the real test server.

The server stores `label_quality` rounded to 4 decimals. With the unrounded median as the limit,
a review set whose values all round up (0.11116, 0.11117, 0.11118 are stored as 0.1112) matched
no record, and the solution crashed sorting an empty table (KeyError: 'label_quality').
"""

from __future__ import annotations

import json
import pathlib
import uuid

import numpy as np
import pandas as pd
import pytest

import utils

ROOT = pathlib.Path(__file__).resolve().parent.parent


def solution_source(marker: str) -> str:
    """The source of notebook 6's solution cell that contains `marker`."""
    nb = json.loads((ROOT / "notebooks" / "6_annotation_argilla.ipynb").read_text(encoding="utf-8"))
    cells = ["".join(c["source"]) for c in nb["cells"]
             if "solution" in c["metadata"].get("tags", []) and marker in "".join(c["source"])]
    assert len(cells) == 1, f"expected one solution cell with {marker!r}"
    return cells[0]


def review_table(label_quality: list[float]) -> pd.DataFrame:
    n = len(label_quality)
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "text_original": [f"We will fund the navy, quote {i}." for i in range(n)],
        "text_preceding": "", "text_following": "", "text": [f"text {i}" for i in range(n)],
        "label_text": [utils.LABELS[i % 3] for i in range(n)],
        "suggested_label": [utils.LABELS[(i + 1) % 3] for i in range(n)],
        "suggested_score": 0.7, "label_quality": label_quality, "is_label_issue": True, "split": "train",
        "embedding": [rng.normal(size=4).tolist() for _ in range(n)],
    })


def test_exercise_1_finds_the_records_at_the_median_even_when_every_value_rounds_up(owner):
    import argilla as rg

    to_review = review_table([0.11116, 0.11117, 0.11118])  # stored as 0.1112; the median is 0.11117
    dataset, _ = utils.get_or_create_dataset(owner, f"exercise-1-{uuid.uuid4().hex[:8]}",
                                             utils.review_settings(embedding_dimensions=4), if_exists="error")
    utils.log_new_records(dataset, utils.review_records(to_review))
    namespace = {"rg": rg, "pd": pd, "to_review": to_review, "dataset": dataset, "client": owner}

    last = solution_source("metadata.label_quality").rstrip().splitlines()[-1]
    exec(solution_source("metadata.label_quality"), namespace)  # noqa: S102 - the notebook's own code
    shown = eval(last, namespace)  # noqa: S307 - the cell's last line, the table Jupyter would display

    # All three are stored as 0.1112, which is the median rounded the same way: all three match.
    assert shown["label_quality"].tolist() == [0.1112, 0.1112, 0.1112]
