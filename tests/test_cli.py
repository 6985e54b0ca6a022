"""The command line: models list/info, one-shot run, and clear errors."""

import json

from click.testing import CliRunner

from memgpt_local.cli import cli


def test_models_list_shows_both_packaged_models():
    result = CliRunner().invoke(cli, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["alias"]: row for row in json.loads(result.output)}
    assert rows["smollm2-135m"]["present"] and rows["smollm2-135m"]["default"]
    assert rows["gemma3-270m"]["n_ctx"] == 32768
    table = CliRunner().invoke(cli, ["models", "list"])
    assert "smollm2-135m*" in table.output and "98 MB" in table.output


def test_models_info_reads_gguf_metadata():
    result = CliRunner().invoke(cli, ["models", "info", "smollm2-135m", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["architecture"] == "llama"
    assert info["vocab_size"] == 49152
    assert info["trained_context"] == 8192
    assert "<|im_start|>" in info["chat_template"]


def test_run_streams_a_greedy_completion():
    result = CliRunner().invoke(cli, ["run", "--max-tokens", "12", "--stats",
                                      "What is the capital of France?"])
    assert result.exit_code == 0, result.output
    assert "L'Étoile, la Cité, la Nation" in result.output


def test_unknown_model_is_a_clear_error():
    result = CliRunner().invoke(cli, ["run", "--model", "nope", "hi"])
    assert result.exit_code == 1
    assert "Unknown model 'nope'. Valid models: gemma3-270m, smollm2-135m" in result.output
