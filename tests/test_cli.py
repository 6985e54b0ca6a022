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


def test_run_streams_a_greedy_completion(smollm):
    question = "What is the capital of France?"
    result = CliRunner().invoke(cli, ["run", "--max-tokens", "12", "--stats", question])
    assert result.exit_code == 0, result.output
    # exactly what this build of llama.cpp decodes greedily (kernels differ between CPUs)
    chat = smollm.chat_tokens([{"role": "user", "content": question}])
    expected = smollm.generate(chat.tokens, max_tokens=12).finish().text
    assert len(expected) > 5 and result.output.startswith(expected + "\n")
    stats = json.loads(result.output.splitlines()[-1])
    assert stats["generated_tokens"] == 12 and stats["finish_reason"] == "length"


def test_unknown_model_is_a_clear_error():
    result = CliRunner().invoke(cli, ["run", "--model", "nope", "hi"])
    assert result.exit_code == 1
    assert "Unknown model 'nope'. Valid models: gemma3-270m, smollm2-135m" in result.output


def test_kv_budget_is_a_size_with_its_default_in_the_help():
    help_text = CliRunner().invoke(cli, ["--help"]).output
    assert "--kv-budget SIZE" in help_text and "default: 4GiB" in help_text
    bad = CliRunner().invoke(cli, ["--kv-budget", "lots", "agents", "list"])
    assert bad.exit_code == 2 and "'lots' is not a size" in bad.output
    assert "Traceback" not in bad.output
    env_bad = CliRunner().invoke(cli, ["agents", "list"], env={"MEMGPT_LOCAL_KV_BUDGET": "-1"})
    assert env_bad.exit_code == 2 and "'-1' is not a size" in env_bad.output


def test_doctor_reports_the_build_devices_and_models(tmp_path):
    env = {"MEMGPT_LOCAL_HOME": str(tmp_path)}
    result = CliRunner().invoke(cli, ["--n-gpu-layers", "-1", "doctor", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert isinstance(report["gpu_offload"], bool) and report["cpu_cores"] >= 1
    assert "CPU" in [device["name"] for device in report["devices"]]
    models = {model["alias"]: model for model in report["models"]}
    assert models["smollm2-135m"]["present"] and models["smollm2-135m"]["n_gpu_layers"] == -1
    text = CliRunner().invoke(cli, ["doctor"], env=env)
    assert text.exit_code == 0 and "GPU offload:" in text.output


def test_each_setting_has_one_range_everywhere(tmp_path):
    """The window and memory hits are bounded alike by the command line, the HTTP schemas
    and the settings an imported agent is checked against (agent/settings.RANGES)."""
    from memgpt_local.agent.settings import RANGES
    from memgpt_local.engine import Engine, EngineConfig
    from memgpt_local.server.app import create_app

    schemas = create_app(Engine(EngineConfig(tmp_path))).openapi()["components"]["schemas"]
    for setting in ("n_ctx", "memory_hits"):
        field = schemas["AgentCreate"]["properties"][setting]["anyOf"][0]
        assert (field["minimum"], field["maximum"]) == RANGES[setting]
    options = {(command, param.name): param.type for command in ("create", "set")
               for param in cli.commands["agents"].commands[command].params}
    for key, setting in ((("create", "n_ctx"), "n_ctx"), (("create", "memory_hits"),
                                                          "memory_hits"),
                         (("set", "memory_hits"), "memory_hits")):
        assert (options[key].min, options[key].max) == RANGES[setting]
    bench_window = {p.name: p.type for p in cli.commands["bench"].commands["run"].params}
    assert bench_window["n_ctx"].min == RANGES["n_ctx"][0]


def test_a_message_of_dash_is_read_from_standard_input_as_utf8():
    import click

    from memgpt_local.cli.common import read_message

    @click.command()
    @click.argument("message")
    def echo(message: str) -> None:
        click.echo(read_message(message))

    assert CliRunner().invoke(echo, ["-"], input="Olá, Zoë\n".encode()).output == "Olá, Zoë\n\n"
    assert CliRunner().invoke(echo, ["plain"]).output == "plain\n"
    bad = CliRunner().invoke(echo, ["-"], input=b"\xff\xfe")
    assert bad.exit_code == 1 and bad.output.strip().splitlines() == [
        "Error: The message on standard input is not UTF-8 text."]
