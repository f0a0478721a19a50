"""The course's classification metric as a Hugging Face `evaluate` module, loaded from this folder.

    import evaluate
    metric = evaluate.load("metrics/course_metric")      # a folder path: nothing is downloaded
    metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])

`evaluate.load("f1")` would fetch the F1 module's code from the Hugging Face Hub when it runs; a
folder holding `<folder name>.py` is loaded from disk, so the course's metric works offline and
its code is in the repository for you to read. The scores are scikit-learn's (the same functions
as utils.classification_metrics, which a test keeps in agreement with this module).
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score
from sklearn.metrics import balanced_accuracy_score
from sklearn.metrics import f1_score
from sklearn.metrics import precision_score
from sklearn.metrics import recall_score

# (evaluate scans this file's imports to check they are installed: one import per line.)

_DESCRIPTION = """F1 macro (each class counts equally, however rare), F1 micro (= accuracy for a
single-label task), accuracy, balanced accuracy, and precision and recall macro, for class ids."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): the predicted class id of each example.
    references (list of int): the true class id of each example.
Returns:
    a dict with f1_macro, f1_micro, accuracy, balanced_accuracy, precision_macro, recall_macro.
    A class that is never predicted has precision 0 (no warning), as in the course's results log.
"""

_CITATION = """Pedregosa et al. (2011), Scikit-learn: Machine Learning in Python, JMLR 12, 2825-2830."""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CourseMetric(evaluate.Metric):
    """F1 macro, accuracy and friends for single-label classification, computed by scikit-learn."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        if len(references) == 0:
            raise ValueError("No examples to score: pass at least one prediction and its reference label.")
        return {
            "f1_macro": float(f1_score(references, predictions, average="macro", zero_division=0)),
            "f1_micro": float(f1_score(references, predictions, average="micro", zero_division=0)),
            "accuracy": float(accuracy_score(references, predictions)),
            "balanced_accuracy": float(balanced_accuracy_score(references, predictions)),
            "precision_macro": float(precision_score(references, predictions, average="macro", zero_division=0)),
            "recall_macro": float(recall_score(references, predictions, average="macro", zero_division=0)),
        }
