#!/usr/bin/env python
"""Train the memory adapter: examples played by scripted policies through the real agent (reply
architecture, synthetic worlds; no benchmark data), a LoRA on the packaged model, converted to a
GGUF adapter. Interrupted, it resumes from its checkpoint when run again with the same folder.

    .venv/bin/python scripts/train_adapter.py --episodes 200 --out ~/.cache/memgpt-local/tune/run1
    .venv/bin/python scripts/train_adapter.py ... --install adapters/smollm2-135m-memory.gguf

Needs the tune extra (scripts/setup.sh --tests installs it). Prints the card as JSON at the end.
"""

import argparse
import json
import sys
from pathlib import Path

from memgpt_local.errors import MemgptLocalError
from memgpt_local.llm.models import Registry
from memgpt_local.tune.train import TrainConfig, require_tune_extra


def options() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="Registry alias of the base.")
    parser.add_argument("--out", type=Path, default=Path.home() / ".cache" / "memgpt-local" /
                        "tune" / "run", help="The run's folder (data, checkpoint, adapter).")
    parser.add_argument("--episodes", type=int, default=200, help="Episodes to generate.")
    parser.add_argument("--data-seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--modules", default="all-linear",
                        help="Layers to adapt: all-linear, or names such as q_proj,v_proj "
                        "(fewer layers: a faster adapter).")
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--max-tokens", type=int, default=2048,
                        help="Leave out longer examples.")
    parser.add_argument("--max-steps", type=int, default=0,
                        help="Train on this many examples of the shuffled order (0: all).")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="Stop training after this long (run again to resume).")
    parser.add_argument("--install", type=Path, default=None,
                        help="Write the finished adapter (and its card) here.")
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")
    return parser.parse_args()


def main() -> int:
    """Run the pipeline; errors are one line."""
    args = options()
    try:
        require_tune_extra()
    except MemgptLocalError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    from memgpt_local.tune.pipeline import RunOptions, run  # needs the extra's packages

    train = TrainConfig(rank=args.rank, alpha=2 * args.rank, modules=args.modules,
                        learning_rate=args.learning_rate,
                        epochs=args.epochs, max_tokens=args.max_tokens,
                        max_steps=args.max_steps)
    run_options = RunOptions(args.out.expanduser(), args.episodes, args.data_seed,
                             args.max_minutes, train, progress=not args.quiet)
    try:
        card = run(Registry.load().get(args.model), run_options, args.install)
    except MemgptLocalError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in card.items() if k != "losses"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
