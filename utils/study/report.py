"""The study's report (report.md and a self-contained report.html), its methods paragraph and the
Hugging Face model card of the chosen model. Both reports come from one list of blocks.
"""

from __future__ import annotations

import base64
import html
import math
import pathlib

import pandas as pd

from . import plots
from .approaches import APPROACH_NAMES

CI_WARNING = ("ci mode: the models are offline stand-ins (all-MiniLM-L6-v2) that were never trained for this task, "
              "on the data the task names. The numbers only show that the study runs; they say nothing about "
              "the real models. Run it in cpu or gpu mode for results.")


def fmt(value: object, digits: int = 3) -> str:
    """A cell of a table as text: rounded floats, 'not reached' for infinity, '–' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "not reached"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer() and abs(value) > 1:  # a count read back as a float
        return f"{int(value)}"
    if isinstance(value, float) and abs(value) >= 1e6:
        return f"{value:.1e}"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _named(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(approach=table["approach"].map(APPROACH_NAMES)) if "approach" in table else table


def markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table."""
    table = _named(table)
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(fmt(v).replace("|", "\\|") for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def html_table(table: pd.DataFrame) -> str:
    """A DataFrame as an HTML table, formatted as the markdown one."""
    table = _named(table)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>"
                   for row in table.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_reports(folder: pathlib.Path, title: str, blocks: list[tuple]) -> None:
    """report.md (figures as files in plots/) and report.html (figures inline as base64 PNG) from `blocks`:
    ("h2", text), ("p", text), ("warn", text), ("table", frame), ("img", name, png bytes), ("pre", text)."""
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    md, body = [f"# {title}", ""], []
    for block in blocks:
        kind = block[0]
        if kind == "h2":
            md += [f"## {block[1]}", ""]
            body.append(f"<h2>{html.escape(block[1])}</h2>")
        elif kind in ("p", "warn"):
            md += [("> **Warning:** " if kind == "warn" else "") + block[1], ""]
            css = ' class="warn"' if kind == "warn" else ""
            body.append(f"<p{css}>{html.escape(block[1])}</p>")
        elif kind == "table":
            md += [markdown_table(block[1]), ""]
            body.append(html_table(block[1]))
        elif kind == "img":
            name, png = block[1], block[2]
            (folder / "plots" / name).write_bytes(png)
            md += [f"![{name}](plots/{name})", ""]
            body.append(f'<img alt="{html.escape(name)}" src="data:image/png;base64,'
                        f'{base64.b64encode(png).decode()}">')
        elif kind == "pre":
            md += ["```", block[1], "```", ""]
            body.append(f"<pre>{html.escape(block[1])}</pre>")
    (folder / "report.md").write_text("\n".join(md), encoding="utf-8")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.85em}td,th{border:1px solid #ccc;"
             "padding:3px 6px;text-align:left}th{background:#f0f0f0}img{max-width:100%}"
             ".warn{background:#fff3cd;padding:0.6em;border-left:4px solid #e0a800}pre{background:#f6f6f6;"
             "padding:0.6em;white-space:pre-wrap}")
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{''.join(body)}</body></html>")
    (folder / "report.html").write_text(page, encoding="utf-8")


def figures(a, r) -> dict[str, bytes]:
    """The study's plots as PNG bytes, by file name."""
    fits = a.tables["fits"]
    needed = plots.finite_max(fits["labels needed"]) if len(fits) else None
    out = {"learning_curves.png": plots.learning_curves(a.tables["learning_curve"], a.tables["cells"],
                                                        APPROACH_NAMES, a.target, a.tables.get("paper"), r.seed,
                                                        x_max=min(needed or 0, 4 * fits["largest measured"].max())
                                                        if len(fits) else None),
           "cost.png": plots.cost(_named(a.tables["cost"]))}
    if "groups" in a.tables:
        out["groups.png"] = plots.groups(a.tables["groups"], f"F1 macro per group: {APPROACH_NAMES[a.chosen]}")
    return out


def model_card(a, data, r, methods_text: str, versions: dict[str, str]) -> str:
    """A Hugging Face model card (README.md) for the chosen approach at its largest size, with `model-index`."""
    import yaml

    chosen = a.chosen
    cost = a.tables["cost"].set_index("approach").loc[chosen]
    cells = a.tables["cells"]
    model_key = {"embeddings": "embedding_model", "encoder": "model", "nli": "nli_model",
                 "nli-zero-shot": "nli_model"}.get(chosen)
    hub_id = r.model_ids[model_key] if model_key else None
    library = {"tfidf": "sklearn", "embeddings": "sentence-transformers"}.get(chosen, "transformers")
    per_class = a.tables["per_class"].set_index("class")
    accuracy = float(per_class.loc["accuracy", "precision"]) if "accuracy" in per_class.index else None
    metrics = [{"type": "f1", "value": round(float(cost["F1 now"]), 4),
                "name": f"F1 macro (mean of {len(r.seeds)} seeds)", "args": {"average": "macro"}}]
    if accuracy is not None:
        metrics.append({"type": "accuracy", "value": round(accuracy, 4), "name": "Accuracy (seeds pooled)"})
    meta = {"library_name": library,
            "pipeline_tag": "zero-shot-classification" if chosen.startswith("nli") else "text-classification",
            "tags": ["text-classification", "hands-on-transformers-study", data.task.name],
            "metrics": ["f1", "accuracy"]}
    if hub_id and r.mode != "ci" and not pathlib.Path(hub_id).exists():
        meta["base_model"] = hub_id
    meta["model-index"] = [{"name": f"{data.task.name}-{chosen}", "results": [{
        "task": {"type": "text-classification", "name": "Text Classification"},
        "dataset": {"name": data.task.name, "type": data.task.name, "split": "test"},
        "metrics": metrics}]}]
    size = int(cost["at size"])
    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip(), "---", "",
             f"# {data.task.name}: {APPROACH_NAMES[chosen]}", "",
             f"The approach this study chose for the task **{data.task.name}**"
             + (f" ({data.task.description})" if data.task.description else "") + ": the best F1 macro at its largest "
             f"measured size. The model is {APPROACH_NAMES[chosen]}"
             + (f" on `{hub_id}`" if hub_id else "") + f", trained on {size} labelled examples.", ""]
    if r.mode == "ci":
        lines += [f"> **Warning:** {CI_WARNING}", ""]
    lines += ["## Labels", "", markdown_table(pd.DataFrame({"id": list(data.task.id2label),
                                                            "label": list(data.task.labels)})), "",
              "## Results", "",
              f"F1 macro {fmt(float(cost['F1 now']))} (95% bootstrap interval {fmt(float(cost['F1 now: low']))}–"
              f"{fmt(float(cost['F1 now: high']))}) on {len(data.test)} held-out test rows, the mean of "
              f"{len(r.seeds)} models trained on different samples of {size} rows.", "",
              markdown_table(a.tables["per_class"]), ""]
    if "groups" in a.tables:
        lines += ["### Per group", "", markdown_table(a.tables["groups"]), ""]
    lines += ["## How it was trained", "", methods_text, "",
              "## How to get it", "", "The study keeps no weights. Train the same recipe on all your labelled rows:",
              "", "```bash", _training_command(chosen, data, r, size), "```", "",
              "## Limitations", "", "Scores hold for data like the test file; check the per-group table before "
              "using the model on groups it was not tested on.", "",
              "Library versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", ""]
    return "\n".join(lines)


def _training_command(chosen: str, data, r, size: int) -> str:
    if chosen == "encoder":
        return (f"python -m utils.train_classifier --task {data.task_path} --model {r.model_ids['model']} "
                f"--output-dir results/{data.task.name}-classifier --n-train {size} --epochs {r.epochs} "
                f"--learning-rate {r.learning_rate}")
    notebook = {"tfidf": "3", "embeddings": "5"}.get(chosen, "4")
    return f"# {APPROACH_NAMES[chosen]}: notebook {notebook} with TASK={data.task_path} and N_TRAIN={size} trains it"
