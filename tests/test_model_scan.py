"""Models other tools keep on disk: an Ollama store (manifests in Ollama's format, blobs by
digest), the Hugging Face cache, LM Studio's folder, llama.cpp's cache, GPT4All's folder and a
folder given with --dir, built here around the packaged GGUF files (linked, as the tools'
own links would be). `models scan` finds them with their metadata, `models add` and
`--model SOURCE` run them, and every broken thing is one line."""

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from memgpt_local.cli import cli
from memgpt_local.llm.discovery import Places
from memgpt_local.llm.gguf import _vocabulary_only
from memgpt_local.llm.scan import Machine, scan

OLLAMA_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SMOL_HF = "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_LMSTUDIO = "lmstudio:lmstudio-community/gemma-3-270m-GGUF/gemma-3-270m-Q4_K_M.gguf"


def _link(target: Path, link: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


def _blob(store: Path, content: bytes | Path) -> dict:
    """An Ollama blob (a link to a model file, or small content) and its layer's digest."""
    data = content.read_bytes() if isinstance(content, Path) else content
    digest = hashlib.sha256(data).hexdigest()
    blob = store / "blobs" / f"sha256-{digest}"
    if isinstance(content, Path):
        _link(content, blob)
    else:
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _manifest(store: Path, name: str, layers: list[tuple[str, dict]]) -> None:
    """A manifest as `ollama pull` writes it: manifests/HOST/NAMESPACE/MODEL/TAG."""
    path = store / "manifests" / "registry.ollama.ai" / name.replace(":", "/")
    path.parent.mkdir(parents=True, exist_ok=True)
    config = _blob(store, b'{"model_format":"gguf","model_family":"llama"}')
    path.write_text(json.dumps({
        "schemaVersion": 2, "mediaType": OLLAMA_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **config},
        "layers": [{"mediaType": f"application/vnd.ollama.image.{kind}", **blob}
                   for kind, blob in layers]}))


def _ollama_store(store: Path, smol: Path) -> None:
    model = _blob(store, smol)
    _manifest(store, "library/smollm2:135m", [
        ("model", model), ("template", _blob(store, b"{{ .System }} {{ .Prompt }}")),
        ("params", _blob(store, b'{"stop": ["<|im_end|>"], "temperature": 0.2}')),
        ("system", _blob(store, b"You are a pirate."))])
    _manifest(store, "someone/tiny:q4", [("model", model)])
    _manifest(store, "library/ghost:latest", [("model", {"digest": "sha256:" + "0" * 64,
                                                         "size": 1})])


def _split_model(folder: Path) -> None:
    """A tiny random llama split by gguf-py into three parts, as gguf-split names them."""
    import gguf

    writer = gguf.GGUFWriter(folder / "tiny.gguf", "llama", split_max_tensors=2)
    writer.add_block_count(2)
    writer.add_context_length(1024)
    writer.add_embedding_length(8)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_file_type(0)
    rng = np.random.default_rng(1337)
    writer.add_tensor("token_embd.weight", rng.random((32, 8), dtype=np.float32))
    for layer in range(2):
        writer.add_tensor(f"blk.{layer}.attn_q.weight", rng.random((8, 8), dtype=np.float32))
        writer.add_tensor(f"blk.{layer}.attn_k.weight", rng.random((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def disk(tmp_path_factory, registry) -> dict:
    """A machine's disk with every store on it; the environment that points at them."""
    root = tmp_path_factory.mktemp("disk")
    home = root / "home"
    smol, gemma = registry.get("smollm2-135m").locate(), registry.get("gemma3-270m").locate()
    _ollama_store(root / "ollama", smol)
    hub = home / ".cache" / "huggingface" / "hub" / "models--HuggingFaceTB--SmolLM2-135M-" \
        "Instruct-GGUF"
    blob = _link(smol, hub / "blobs" / hashlib.sha256(smol.read_bytes()).hexdigest())
    _link(Path("../../blobs") / blob.name, hub / "snapshots" / "0123abc" / smol.name)
    _link(gemma, home / ".lmstudio" / "models" / "lmstudio-community" / "gemma-3-270m-GGUF" /
          "gemma-3-270m-Q4_K_M.gguf")
    cached = _link(gemma, root / "llama-cache" / "ggml-org_gemma-3-270m-GGUF_gemma-3-270m-"
                   "Q4_K_M.gguf")
    gpt4all = _link(smol, home / ".local" / "share" / "nomic.ai" / "GPT4All" / "smollm2.gguf")
    extra = root / "extra"
    extra.mkdir()
    _split_model(extra)
    (extra / "truncated.gguf").write_bytes(smol.read_bytes()[:2_000_000])
    (extra / "notes.gguf").write_text("not a model")
    env = {"HOME": str(home), "OLLAMA_MODELS": str(root / "ollama"),
           "LLAMA_CACHE": str(root / "llama-cache"), "HF_HUB_CACHE": None, "HF_HOME": None,
           "XDG_CACHE_HOME": None, "MEMGPT_LOCAL_GPU_BUDGET": None}
    return {"env": env, "extra": extra, "cached": cached, "gpt4all": gpt4all, "smol": smol,
            "gemma": gemma}


def _run(disk: dict, home: Path, *args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, list(args), input=stdin,
                              env={**disk["env"], "MEMGPT_LOCAL_HOME": str(home)})


def test_scan_finds_every_store_with_the_files_own_metadata(disk, tmp_path):
    """Each model once (the same file in several stores lists every source), its facts as
    llama.cpp reads them, Ollama's other layers shown, a split model counted once, and each
    broken thing one line."""
    result = _run(disk, tmp_path, "models", "scan", "--dir", str(disk["extra"]), "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    by_arch = {m["architecture"] + str(m["parts"]): m for m in found["models"]}
    assert set(by_arch) == {"llama1", "gemma31", "llama3"}, by_arch.keys()
    smol, gemma, tiny = by_arch["llama1"], by_arch["gemma31"], by_arch["llama3"]
    assert set(smol["sources"]) == {"ollama:smollm2:135m", "ollama:someone/tiny:q4", SMOL_HF,
                                    str(disk["gpt4all"])}
    assert set(gemma["sources"]) == {GEMMA_LMSTUDIO, str(disk["cached"])}
    for model, path in ((smol, disk["smol"]), (gemma, disk["gemma"])):
        llama = _vocabulary_only(str(path))
        arch = llama.metadata["general.architecture"]
        assert model["trained_context"] == int(llama.metadata[f"{arch}.context_length"])
        assert model["size_bytes"] == path.stat().st_size
    assert (smol["parameters"], smol["quantisation"]) == (134515008, "Q4_1")
    assert (gemma["parameters"], gemma["quantisation"]) == (268098176, "Q4_K_M")
    assert smol["has_chat_template"] and not gemma["has_chat_template"]
    assert smol["fits_window"] == 8192 and gemma["fits_window"] == 32768
    notes = " ".join(smol["notes"])
    assert "Ollama system: You are a pirate." in notes and "Ollama params" in notes
    assert tiny["parts"] == 3 and tiny["parameters"] == 32 * 8 + 2 * (64 + 32)
    assert tiny["size_bytes"] == sum(p.stat().st_size for p in disk["extra"].glob("tiny-*"))
    skipped = "\n".join(found["skipped"])
    assert len(found["skipped"]) == 3, skipped
    assert "ghost:latest" in skipped and "ollama pull ghost:latest" in skipped
    assert "truncated.gguf is truncated" in skipped and "notes.gguf is not a GGUF" in skipped
    table = _run(disk, tmp_path, "models", "scan", "--dir", str(disk["extra"]))
    assert table.exit_code == 0 and "Traceback" not in table.output
    assert "smollm2:135m" in table.output and "3 model(s)" in table.output


@pytest.mark.parametrize("source", [
    "ollama:smollm2:135m", "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
    "lmstudio:lmstudio-community/gemma-3-270m-GGUF", "llama.cpp"])
def test_a_model_added_from_each_store_answers(disk, tmp_path, source):
    """`models add` writes an entry read from the file; an agent on it answers `send`."""
    source = str(disk["cached"]) if source == "llama.cpp" else source
    added = _run(disk, tmp_path, "models", "add", "mine", source, "--n-ctx", "2048")
    assert added.exit_code == 0, added.output
    entry = (tmp_path / "models.toml").read_text()
    assert "[models.mine]" in entry and 'n_gpu_layers = "auto"' in entry
    gemma = "gemma" in source
    assert f'chat_template = "{"gemma" if gemma else "gguf"}"' in entry
    assert _run(disk, tmp_path, "agents", "create", "bot", "--model", "mine").exit_code == 0
    sent = _run(disk, tmp_path, "send", "-a", "bot", "Hello! My name is Ana.")
    assert sent.exit_code == 0, sent.output
    assert sent.output.strip() and "Traceback" not in sent.output


def test_chat_runs_an_ollama_model_named_directly(disk, tmp_path):
    """`chat --model ollama:NAME` adds the model under an alias made from its name (the
    agent stores that alias) and the agent greets the user."""
    result = _run(disk, tmp_path, "chat", "--model", "ollama:smollm2:135m", stdin="/exit\n")
    assert result.exit_code == 0, result.output
    entries = (tmp_path / "models.toml").read_text()
    assert 'found_at = "ollama:smollm2:135m"' in entries
    shown = _run(disk, tmp_path, "agents", "show", "sam")
    assert shown.output.startswith("sam: smollm2-135m-2,"), shown.output
    again = _run(disk, tmp_path, "agents", "create", "bo", "--model", SMOL_HF)
    assert again.exit_code == 0 and "smollm2-135m-2" in again.output  # the same file
    assert (tmp_path / "models.toml").read_text() == entries


@pytest.mark.parametrize(("source", "says"), [
    ("ollama:ghost", "Ollama model ghost:latest: its model blob"),
    ("ollama:nothing:7b", "It has: "),
    ("{extra}/truncated.gguf", "is truncated"),
    ("{extra}/notes.gguf", "is not a GGUF file"),
    ("{extra}/absent.gguf", "No model file at"),
    ("hf:NoSuch/Repo", "not on this machine"),
])
def test_a_source_that_names_no_usable_model_is_one_line(disk, tmp_path, source, says):
    """Nothing is written; the error names what is wrong."""
    result = _run(disk, tmp_path, "models", "add", "x", source.format(extra=disk["extra"]))
    assert result.exit_code == 1
    assert says in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "models.toml").exists()


def test_settings_that_will_not_fit_are_refused_saying_what_would(disk, tmp_path):
    """A window past the trained context, GPU layers the GPU cannot hold, an alias that
    exists (unless --force): each one line, nothing written."""
    too_long = _run(disk, tmp_path, "models", "add", "x", "ollama:smollm2:135m", "--n-ctx",
                    "16384")
    assert too_long.exit_code == 1 and "--n-ctx 8192 or less" in too_long.output
    gpu = CliRunner().invoke(cli, ["models", "add", "x", "ollama:smollm2:135m",
                                   "--n-gpu-layers", "20"],
                             env={**disk["env"], "MEMGPT_LOCAL_HOME": str(tmp_path),
                                  "MEMGPT_LOCAL_GPU_BUDGET": "100MiB"})
    assert gpu.exit_code == 1 and "--n-gpu-layers 0 (or auto) fits" in gpu.output, gpu.output
    template = _run(disk, tmp_path, "models", "add", "x", "ollama:smollm2:135m",
                    "--chat-template", "vicuna")
    assert template.exit_code == 1 and "Valid: gguf, chatml, gemma" in template.output
    taken = _run(disk, tmp_path, "models", "add", "smollm2-135m", "ollama:smollm2:135m")
    assert taken.exit_code == 1 and "--force" in taken.output
    assert not (tmp_path / "models.toml").exists()
    forced = _run(disk, tmp_path, "models", "add", "smollm2-135m", "ollama:smollm2:135m",
                  "--force", "--n-ctx", "2048")
    assert forced.exit_code == 0, forced.output
    listed = json.loads(_run(disk, tmp_path, "models", "list", "--json").output)
    assert {m["alias"]: m["n_ctx"] for m in listed}["smollm2-135m"] == 2048


def test_a_model_whose_file_went_away_says_how_to_add_it_again(disk, tmp_path):
    """The entry remembers its source: the error names it and the command."""
    link = _link(disk["smol"], tmp_path / "models" / "moving.gguf")
    assert _run(disk, tmp_path, "models", "add", "mover", str(link)).exit_code == 0
    assert _run(disk, tmp_path, "agents", "create", "m", "--model", "mover").exit_code == 0
    link.unlink()
    sent = _run(disk, tmp_path, "send", "-a", "m", "Hello")
    assert sent.exit_code == 1 and sent.output.count("\n") == 1, sent.output
    assert f"added from {link}" in sent.output and "models add mover" in sent.output


def test_doctor_names_the_models_found_and_suggests_one(disk, tmp_path):
    """Of the models found, the one with a chat template that fits the largest window is
    suggested (Gemma's file has no template; the split one was trained for 1,024 tokens)."""
    result = _run(disk, tmp_path, "doctor", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert len(report["found"]) == 2
    assert "ollama:smollm2:135m" in report["suggested"]["sources"]
    text = _run(disk, tmp_path, "doctor").output
    assert "Suggested for chat here: memgpt-local chat --model ollama:smollm2:135m" in text


def test_a_folder_of_200_files_is_scanned_in_under_two_seconds(disk, tmp_path):
    """Most files are not models: only .gguf files are opened, and only their headers."""
    folder = tmp_path / "many"
    for index in range(196):
        (folder / f"sub{index % 7}").mkdir(parents=True, exist_ok=True)
        (folder / f"sub{index % 7}" / f"file{index}.bin").write_bytes(b"x" * 4096)
    for index, model in enumerate([disk["smol"], disk["gemma"]] * 2):
        _link(model, folder / f"model{index}.gguf")
    started = time.perf_counter()
    found = scan(Places([("dir", folder)]), Machine(8 * 1024 ** 3))
    assert time.perf_counter() - started < 2.0
    assert len(found.models) == 2 and sum(len(m.sources) for m in found.models) == 4
