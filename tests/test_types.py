"""The package type-checks under the settings in pyproject.toml ([tool.mypy]: every function
annotated, untyped bodies checked too), as lint-imports checks the layers."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_type_checks():
    mypy = Path(sys.executable).parent / "mypy"
    result = subprocess.run([str(mypy)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout


def test_the_checker_is_strict_and_ignores_no_code_of_ours():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    for flag in ("check_untyped_defs", "disallow_untyped_defs", "no_implicit_optional",
                 "warn_unused_ignores"):
        assert config.get(flag) is True, flag
    assert "ignore_errors" not in str(config)
    for override in config.get("overrides", []):
        modules = override["module"]
        assert not any(m.startswith("memgpt_local") for m in modules), modules
        assert set(override) == {"module", "ignore_missing_imports"}
    source = "\n".join(p.read_text() for p in (ROOT / "memgpt_local").rglob("*.py"))
    assert "type: ignore" not in source
