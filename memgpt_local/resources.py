"""Paths of the files that ship beside the package: models.toml, grammars/, prompt_templates/."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_TOML = REPO_ROOT / "models.toml"
GRAMMARS_DIR = REPO_ROOT / "grammars"
PROMPT_TEMPLATES_DIR = REPO_ROOT / "prompt_templates"
CHAT_TEMPLATES_DIR = PROMPT_TEMPLATES_DIR / "chat"
