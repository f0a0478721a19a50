"""Helpers shared by the Hands-on Transformers notebooks.

Everything a notebook needs is importable from here: `import utils`, then `utils.settings(...)`.
The modules are small and flat; read them when you want to know how something works.
"""

from .task import BUILT_IN_TASKS, DEFAULT_TASK, Task, TaskError, default_task, load_task
from .data import (ALL_ROWS, ID2LABEL, LABEL2ID, LABELS, DataError, course_splits, download, load_course_data,
                   prepare_texts, read_course_csv, sample, text_plain, text_with_context)
from .data_quality import (APPROACH_EMBEDDINGS, APPROACH_EMBEDDINGS_ISSUES_RELABELLED,
                           APPROACH_EMBEDDINGS_ISSUES_REMOVED, bootstrap_f1_differences, label_issues_path,
                           label_issues_table, load_label_issues, out_of_sample_pred_probs, plot_confident_joint,
                           plot_label_quality, save_label_issues)
from .device import (check_trainable_dtype, device, free_memory, gpu_info, inference_dtype, mixed_precision,
                     peak_gpu_memory_gib, precision_args, warn_if_no_gpu)
from .llm import (ANSWERS, INSTRUCTION, AnswerOnlyCollator, build_messages, encode_example, encode_for_training,
                  files_mb, generate_answers, label_log_likelihoods, messages_for, model_size_mb, parse_answer,
                  parse_table, predict_labels, prompt_text)
from .metrics import (APPROACH_BERT, APPROACH_CLASSICAL, APPROACH_LLM_LORA, APPROACH_LLM_ZERO_SHOT, APPROACH_NLI,
                      APPROACH_NLI_ZERO_SHOT, COURSE_METRIC_DIR, classification_metrics, compute_metrics,
                      latest_results, log_result, metrics_table, output_dir, read_results, report_table, results_dir)
from .modes import by_mode, model_name, prepare_stand_ins, run_mode, seed_everything, settings, show_header
from .plots import plot_confusion_matrix, plot_label_distribution, plot_learning_curve, plot_loss
from .results import (SOURCE_YOURS, ResultsFileError, expected_results, export_results, import_results,
                      keep_results_on_drive, majority_class_f1_macro, reference_results, with_reference_rows)
from .resume import TrainingRun, drive_space, training_seconds
from .self_check import check
from .timing import Timer

from .nli import (HYPOTHESES, NLI_ID2LABEL, PAPER_REFERENCE, entailment_probabilities, load_nli_model, make_nli_pairs,
                  nli_compute_metrics, nli_label_ids, nli_predict, nli_scores, nli_true_labels)
from .argilla_connection import (AnnotationError, ArgillaCredentials, argilla_credentials, connect,
                                 connect_or_fall_back, connection_table)
from .annotation import (APPROACH_EMBEDDINGS_REVIEWED, NO_ANSWERS_YET, get_or_create_dataset, log_new_records,
                         record_ids, review_records, review_settings, select_for_review, settings_client,
                         suggestion_scores)
from .annotation_answers import (add_stand_in_responses, agreement_table, annotation_progress, apply_corrections,
                                 corrected_labels, responses_to_dataset, submitted_responses)
from .annotation_form import AnnotationForm, NotebookDataset

# The course repository: the notebooks' badges and bootstrap cells copy it (tests check they agree).
REPO_URL = "https://github.com/hands-on-transformers/hands-on-transformers"
