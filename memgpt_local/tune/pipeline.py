"""The whole adapter pipeline in one run folder: generate (or reuse) the examples, check them
against the benchmark data, train (resuming), convert to a GGUF adapter with llama.cpp's own
converter, and write the card and the loss plot."""

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from ..bench.tasks.data import DEFAULT_DATA
from ..errors import MemgptLocalError
from ..llm.adapters import file_digest
from ..llm.gguf import vocabulary
from ..llm.models import ModelSpec
from . import dataset
from .train import TrainConfig, Trainer, config_dict, require_tune_extra


@dataclass(frozen=True)
class RunOptions:
    """One pipeline run: where, how much data, how long, how trained."""

    folder: Path
    episodes: int = 200
    data_seed: int = 7
    max_minutes: float | None = None  # stop training then (a later run resumes)
    train: TrainConfig = field(default_factory=TrainConfig)
    benchmark_data: Path = DEFAULT_DATA
    progress: bool = True


def converter() -> Path:
    """llama.cpp's LoRA converter, kept by scripts/setup.sh --tests beside the environment."""
    path = (Path(sys.prefix) / "share" / f"llama-cpp-python-{version('llama-cpp-python')}"
            / "convert_lora_to_gguf.py")
    if not path.is_file():
        raise MemgptLocalError(f"llama.cpp's LoRA converter is not at {path}: run "
                               "scripts/setup.sh --tests (it keeps it there).")
    return path


def convert(peft_dir: Path, base_dir: Path, out: Path) -> Path:
    """A PEFT adapter as a GGUF adapter (f16), by llama.cpp's convert_lora_to_gguf.py."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(converter()), "--base", str(base_dir), "--outfile",
               str(out), "--outtype", "f16", str(peft_dir)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MemgptLocalError(f"Converting the adapter failed: {last}")
    return out


def examples_for(spec: ModelSpec, options: RunOptions) -> tuple[list[dict], dict]:
    """The run's examples (generated once; the same episodes and seed reuse the file) and the
    facts about them: sizes, skills, and the benchmark strings found in them (none, or the
    run stops)."""
    data, facts_file = options.folder / "examples.jsonl", options.folder / "data.json"
    wanted = {"episodes": options.episodes, "seed": options.data_seed,
              "base_sha256": file_digest(spec.locate())}
    if facts_file.is_file() and data.is_file() and \
            {k: v for k, v in json.loads(facts_file.read_text()).items() if k in wanted} == wanted:
        return dataset.read(data), json.loads(facts_file.read_text())
    made = dataset.generate(spec, options.episodes, options.data_seed, options.progress)
    found = check_benchmarks(spec, made.examples, options.benchmark_data)
    dataset.write(made.examples, data)
    facts = {**wanted, "examples": len(made.examples), "skills": made.skills(),
             "prompt_tokens": sum(len(e.prompt) for e in made.examples),
             "target_tokens": sum(len(e.target) for e in made.examples),
             "benchmark_strings_found": found}
    facts_file.write_text(json.dumps(facts, indent=2))
    return dataset.read(data), facts


def check_benchmarks(spec: ModelSpec, examples: list, data_dir: Path) -> int:
    """How many benchmark strings appear in the examples' prompts or targets (the run stops
    where any does); 0 too where the data is not there to check against."""
    if not data_dir.is_dir():
        return 0
    llm = vocabulary(spec)
    texts = [llm.detokenize(e.prompt + e.target).decode("utf-8", "replace") for e in examples]
    found = dataset.contamination(texts, data_dir)
    if found:
        raise MemgptLocalError(f"{len(found)} benchmark string(s) reached the training data, "
                               f"e.g. {found[0][:60]!r}: nothing of {data_dir} may.")
    return 0


def run(spec: ModelSpec, options: RunOptions, adapter_out: Path | None = None) -> dict:
    """Generate, train, convert; the card (also written as card.json) says what was done."""
    require_tune_extra()
    options.folder.mkdir(parents=True, exist_ok=True)
    examples, facts = examples_for(spec, options)
    trainer = Trainer(spec, options.folder, options.train)
    seconds = options.max_minutes * 60 if options.max_minutes else None
    result = trainer.run(examples, seconds, options.progress)
    card = {"base": spec.locate().name, "base_sha256": facts["base_sha256"],
            "architecture": "reply", "data": facts, "train": config_dict(options.train),
            "bf16": trainer.bf16, "steps": result.steps, "total_steps": result.total_steps,
            "left_out_too_long": result.left_out, "losses": [round(x, 4) for x in result.losses],
            "train_seconds": round(result.seconds, 1), "finished": result.steps ==
            result.total_steps, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if card["finished"]:
        peft_dir, base_dir = trainer.save_adapter()
        out = adapter_out or options.folder / "adapter.gguf"
        convert(peft_dir, base_dir, out)
        card |= {"adapter": out.name, "adapter_sha256": file_digest(out),
                 "adapter_bytes": out.stat().st_size}
        write_card(card, out.with_suffix(".json"))
    write_card(card, options.folder / "card.json")
    return card


def write_card(card: dict, path: Path) -> None:
    """The card as JSON and its loss curve as a PNG beside it."""
    path.write_text(json.dumps(card, indent=1))
    plot_losses(card["losses"], path.with_suffix(".png"))


def plot_losses(losses: list[float], path: Path, window: int = 20) -> None:
    """Each step's loss and its running mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.5))
    axes.plot(losses, alpha=0.35, label="step")
    means = [sum(losses[max(0, i - window + 1):i + 1]) / len(losses[max(0, i - window + 1):i + 1])
             for i in range(len(losses))]
    axes.plot(means, label=f"mean of {window}")
    axes.set_xlabel("step (one example)")
    axes.set_ylabel("loss on the policy's tokens")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
