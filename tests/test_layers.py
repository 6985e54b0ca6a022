"""The layers and the rules between them, as the import-linter contracts in pyproject.toml say."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_each_layer_has_its_folder():
    package = ROOT / "memgpt_local"
    for layer in ("llm", "memory", "agent", "bench", "cli"):
        assert (package / layer / "__init__.py").is_file(), layer
    assert (package / "engine.py").is_file()
    assert not [p.name for p in package.glob("*.py")
                if p.name not in {"__init__.py", "__main__.py", "engine.py", "errors.py",
                                  "resources.py", "files.py", "processes.py",
                                  "transfer.py",  # the engine's part that moves agents
                                  "store_copy.py"}]  # and the one that moves stores
