"""Summaries of benchmark results: a Markdown table (model x task x variant) and PNG plots of
accuracy against nesting level and against the number of distractors."""

import json
from collections import Counter, defaultdict
from pathlib import Path
from statistics import mean

from .suite import RESULTS

PLOTS = {"nested-kv": ("nesting level", "nested_kv.png"),
         "doc-qa": ("distractor passages (K)", "doc_qa.png")}
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop",
              5: "adversarial"}


def load_results(folders: list[Path]) -> list[dict]:
    """Every case recorded in the folders (a case recorded twice counts once: the last)."""
    rows: dict[tuple, dict] = {}
    for folder in folders:
        path = folder / RESULTS
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    rows[(row["model"], row["task"], row["variant"], row["case_id"])] = row
    return list(rows.values())


def _grouped(rows: list[dict], *keys: str) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys)].append(row)
    return dict(sorted(groups.items(), key=lambda item: [str(v) for v in item[0]]))


def summary_rows(rows: list[dict]) -> list[dict]:
    """One row per model, task and variant: cases, mean score, the answers found correct and
    those among them that copy a brought passage (None where not recorded: doc-QA records
    them), cases stopped (step cap, failures) with the loop's reasons counted where
    recorded, agent steps and those that failed (None for
    call validity's probes, and failed_steps None for results recorded without them), wall
    time."""
    out = []
    for (model, task, variant), group in _grouped(rows, "model", "task", "variant").items():
        steps, failed = _steps(group)
        judged = [r for r in group if "echoed" in r.get("extra", {})]
        out.append({"model": model, "task": task, "variant": variant, "cases": len(group),
                    "score": mean(r["score"] for r in group),
                    "correct": len(judged) or None,
                    "echoed": sum(r["extra"]["echoed"] for r in judged),
                    "stopped": sum(bool(r.get("stopped")) for r in group),
                    "stop_reasons": Counter(r["stop_reason"] for r in group
                                            if r.get("stop_reason")),
                    "steps": steps,
                    "failed_steps": failed, "wall_s": sum(r["wall_s"] for r in group)})
    return out


def summary_table(rows: list[dict]) -> str:
    """The Markdown table of summary_rows."""
    lines = ["| model | task | variant | cases | score | correct (echoed) | stopped "
             "| steps (failed) | wall time (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for row in summary_rows(rows):
        steps = "" if row["steps"] is None else str(row["steps"])
        if row["failed_steps"] is not None:
            steps += f" ({row['failed_steps']})"
        correct = f"{row['correct']} ({row['echoed']})" if row["correct"] else ""
        reasons = ", ".join(f"{k} {n}" for k, n in sorted(row["stop_reasons"].items()))
        stopped = f"{row['stopped']} ({reasons})" if reasons else str(row["stopped"])
        lines.append(f"| {row['model']} | {row['task']} | {row['variant']} | {row['cases']} | "
                     f"{row['score']:.3f} | {correct} | {stopped} | {steps} | "
                     f"{row['wall_s']:.0f} |")
    return "\n".join(lines)


def _steps(group: list[dict]) -> tuple[int | None, int | None]:
    """Agent steps and those that failed (None: call validity's probes have no steps; failed
    None: results recorded without it)."""
    if group[0]["task"] == "call-validity":
        return None, None
    steps = sum(len(r.get("calls", [])) for r in group)
    if any("failed_steps" not in r for r in group):
        return steps, None
    return steps, sum(r["failed_steps"] for r in group)


def group_table(rows: list[dict], task: str) -> str:
    """Mean score per level, K or category of one task."""
    chosen = [r for r in rows if r["task"] == task]
    if not chosen:
        return ""
    groups = sorted({r["group"] for r in chosen})
    names = [CATEGORIES.get(g, str(g)) if task == "locomo" else str(g) for g in groups]
    lines = [f"| model | variant | {' | '.join(names)} |", "|---|---|" + "---|" * len(groups)]
    for (model, variant), group in _grouped(chosen, "model", "variant").items():
        cells = []
        for g in groups:
            scores = [r["score"] for r in group if r["group"] == g]
            cells.append(f"{mean(scores):.2f} ({len(scores)})" if scores else "")
        lines.append(f"| {model} | {variant} | {' | '.join(cells)} |")
    return "\n".join(lines)


def validity_table(rows: list[dict]) -> str:
    """Call validity per model and mode: valid share, decoding speed, completions cut."""
    chosen = [r for r in rows if r["task"] == "call-validity"]
    if not chosen:
        return ""
    lines = ["| model | decoding | prompts | valid calls | tokens/s | generated tokens (mean) "
             "| cut (length or loop) |", "|---|---|---|---|---|---|---|"]
    for (model, mode), group in _grouped(chosen, "model", "variant").items():
        speed = mean(r["extra"]["tokens_per_s"] for r in group)
        tokens = mean(r["generated_tokens"] for r in group)
        cut = sum(bool(r.get("stopped")) for r in group)
        lines.append(f"| {model} | {mode} | {len(group)} | {mean(r['score'] for r in group):.3f}"
                     f" | {speed:.1f} | {tokens:.0f} | {cut} |")
    return "\n".join(lines)


def plot(rows: list[dict], task: str, out: Path) -> Path | None:
    """Accuracy against the task's group, one line per model and variant (None: no rows)."""
    chosen = [r for r in rows if r["task"] == task]
    if not chosen:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label, name = PLOTS[task]
    figure, axes = plt.subplots(figsize=(6, 4))
    for (model, variant), group in _grouped(chosen, "model", "variant").items():
        xs = sorted({r["group"] for r in group})
        axes.plot(xs, [mean(r["score"] for r in group if r["group"] == x) for x in xs],
                  marker="o", label=f"{model} {variant}")
    axes.set(xlabel=label, ylabel="accuracy", ylim=(-0.05, 1.05), title=task)
    axes.legend(fontsize="small")
    figure.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    figure.savefig(out / name, dpi=100)
    plt.close(figure)
    return out / name


def write_report(folders: list[Path], out: Path) -> str:
    """The summary of one or more runs as Markdown (saved as summary.md, and as summary.json
    for the web page) and plots."""
    rows = load_results(folders)
    parts = ["## Summary", summary_table(rows)]
    for task in ("nested-kv", "doc-qa", "locomo"):
        table = group_table(rows, task)
        if table:
            parts += [f"## {task} by {'category' if task == 'locomo' else 'group'}", table]
    validity = validity_table(rows)
    if validity:
        parts += ["## call-validity", validity]
    plots = [p for p in (plot(rows, task, out) for task in PLOTS) if p]
    parts += [f"![{p.stem}]({p.name})" for p in plots]
    text = "\n\n".join(parts) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(text, encoding="utf-8")
    summary = {"summary": summary_rows(rows), "plots": [p.name for p in plots]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return text
