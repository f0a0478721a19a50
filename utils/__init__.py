"""Helpers shared by the Hands-on Transformers notebooks.

Everything a notebook needs is importable from here: `import utils`, then `utils.settings(...)`.
The modules are small and flat; read them when you want to know how something works.
"""

from .data import (ID2LABEL, LABEL2ID, LABELS, DataError, course_splits, download, load_course_data, prepare_texts,
                   read_course_csv, sample, text_plain, text_with_context)
from .device import (device, free_memory, gpu_info, inference_dtype, mixed_precision, peak_gpu_memory_gib,
                     precision_args, warn_if_no_gpu)
from .metrics import (APPROACH_BERT, APPROACH_CLASSICAL, APPROACH_LLM_LORA, APPROACH_LLM_ZERO_SHOT, APPROACH_NLI,
                      APPROACH_NLI_ZERO_SHOT, classification_metrics, compute_metrics, latest_results, log_result,
                      metrics_table, output_dir, read_results, report_table, results_dir)
from .modes import by_mode, model_name, prepare_stand_ins, run_mode, seed_everything, settings, show_header
from .plots import plot_confusion_matrix, plot_label_distribution, plot_learning_curve, plot_loss
from .timing import Timer

REPO_URL = "https://github.com/hands-on-transformers/hands-on-transformers"
