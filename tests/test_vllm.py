"""The vLLM client: requests as vLLM's /v1/completions takes them (token-id prompts, the call's
regex as structured_outputs, steering by allowed_token_ids), answers read back (token ids,
finish reasons, cached tokens), faults in one line - against a scripted vLLM over httpx's mock
transport. A real vLLM needs a GPU: scripts/check_vllm.sh runs tests/test_vllm_real.py there."""

import json
from dataclasses import replace

import httpx
import jsonschema
import pytest

from memgpt_local.errors import RemoteServerError
from memgpt_local.llm import decoding
from memgpt_local.llm.kvcache import SnapshotStore
from memgpt_local.llm.remote import RemoteRuntime, server_for
from memgpt_local.llm.remote.vllm_server import PROBE_ANSWER, VllmServer
from memgpt_local.llm.reply_constraint import REPLY_REGEX

SCHEMA = decoding.function_call_schema([
    {"name": "send_message", "parameters": {
        "type": "object", "properties": {"message": {"type": "string"}},
        "required": ["message"], "additionalProperties": False}}])
URL = "http://vllm"


class ScriptedVllm:
    """Answers /v1/models and /v1/completions as vLLM does: a streamed completion follows a
    token script; asked with allowed_token_ids, the lowest allowed id comes next."""

    def __init__(self, script: list[int], models=("smol",), cached: int = 5):
        self.script, self.models, self.cached = script, models, cached
        self.bodies: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [
                {"id": name, "root": f"/models/{name}", "max_model_len": 4096}
                for name in self.models]})
        body = json.loads(request.content)
        self.bodies.append(body)
        if body.get("stream"):
            return httpx.Response(200, content=self._sse(body))
        return httpx.Response(200, json=self._whole(body))

    def _usage(self, body: dict, completion: int) -> dict:
        prompt = len(body["prompt"]) if isinstance(body["prompt"], list) else 40
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": self.cached}}

    def _sse(self, body: dict) -> bytes:
        tokens = self.script[:body["max_tokens"]]
        chunks = [{"choices": [{"index": 0, "text": "x", "token_ids": [t],
                                "finish_reason": None}], "usage": self._usage(body, i + 1)}
                  for i, t in enumerate(tokens)]
        reason = "length" if len(tokens) == body["max_tokens"] else "stop"
        chunks.append({"choices": [{"index": 0, "text": "", "token_ids": [],
                                    "finish_reason": reason}]})
        chunks.append({"choices": [], "usage": self._usage(body, len(tokens))})
        lines = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]
        return "".join(lines).encode()

    def _whole(self, body: dict) -> dict:
        if "structured_outputs" in body and body["prompt"] and isinstance(body["prompt"], str):
            return {"choices": [{"index": 0, "text": PROBE_ANSWER, "token_ids": [1],
                                 "finish_reason": "stop"}], "usage": self._usage(body, 1)}
        token = min(body["allowed_token_ids"])
        return {"choices": [{"index": 0, "text": "x", "token_ids": [token],
                             "finish_reason": "length"}], "usage": self._usage(body, 1)}


@pytest.fixture(scope="module")
def smol_spec(registry):
    return replace(registry.get("smollm2-135m"), server=URL, server_kind="vllm")


def _runtime(spec, tmp_path, fake) -> RemoteRuntime:
    server = VllmServer(URL, model=spec.served_model, transport=httpx.MockTransport(fake))
    return RemoteRuntime(spec, SnapshotStore(tmp_path), tmp_path / "grammar", n_ctx=2048,
                         server=server)


def test_a_vllm_entry_gets_the_vllm_client(smol_spec):
    server = server_for(replace(smol_spec, served_model="smol"))
    assert isinstance(server, VllmServer) and server.model == "smol"
    server.close()


def test_a_call_goes_as_token_ids_under_its_regex_and_comes_back_whole(smol_spec, tmp_path):
    call = '{"thoughts":"Say hi.","function":"send_message","arguments":{"message":"hi"}}'
    fake = ScriptedVllm([])
    runtime = _runtime(smol_spec, tmp_path, fake)
    fake.script = runtime.tokenize(call)
    prompt = runtime.chat_tokens([{"role": "user", "content": "<|im_start|>system hi"}]).tokens
    processor = runtime.constraint(SCHEMA).processor()
    generation = runtime.generate(prompt, max_tokens=300, processor=processor).finish()
    jsonschema.validate(json.loads(generation.text), SCHEMA)
    body = fake.bodies[0]
    assert body["prompt"] == prompt and body["model"] == "smol"
    assert body["structured_outputs"] == {"regex": processor.regex}
    assert body["return_token_ids"] and body["stream"]
    assert generation.stats.evaluated_tokens == len(prompt) - fake.cached
    assert generation.stats.prefix_source == "server"


def _decoded(spec, tmp_path, output: str, reply: bool = False, eos: bool = False):
    """One generation under SCHEMA's constraint (or the reply-or-call one) while the scripted
    vLLM sends `output`'s tokens: the generation, its processor and the fake server."""
    fake = ScriptedVllm([])
    runtime = _runtime(spec, tmp_path, fake)
    fake.script = runtime.tokenize(output) + ([runtime.llm.token_eos()] if eos else [])
    processor = (runtime.reply_constraint(SCHEMA) if reply else runtime.constraint(SCHEMA)
                 ).processor()
    generation = runtime.generate([1, 2, 3], max_tokens=300, processor=processor).finish()
    return generation, processor, fake


def test_a_loop_is_closed_by_steering_with_allowed_token_ids(smol_spec, tmp_path):
    generation, _, fake = _decoded(smol_spec, tmp_path, '{"thoughts":"' + "ha ha ha ha " * 40)
    jsonschema.validate(json.loads(generation.text), SCHEMA)
    steered = [b for b in fake.bodies if "allowed_token_ids" in b]
    assert steered and all(not b.get("stream") and b["max_tokens"] == 1 for b in steered)
    assert generation.stats.loops_closed >= 1


def test_a_token_the_regex_forbids_is_the_servers_fault(smol_spec, tmp_path):
    with pytest.raises(RemoteServerError, match="vllm at http://vllm sent token .* applying"):
        _decoded(smol_spec, tmp_path, '{"function":"delete_everything"')


REPLY = "Hello Ana, lovely to meet you. How are the bees?"
CALL = '{"thoughts":"Say hi.","function":"send_message","arguments":{"message":"hi"}}'


@pytest.mark.parametrize("output, branch", [(REPLY, "reply"), (CALL, "call")])
def test_a_reply_agents_step_goes_under_both_branches_and_comes_back_whole(
        smol_spec, tmp_path, output, branch):
    # a plain reply runs until the model ends it (it used to end after its first token, where
    # the reply constraint said it "may end"); a call ends where it is whole
    generation, processor, fake = _decoded(smol_spec, tmp_path, output, reply=True, eos=True)
    assert generation.text == output and processor.branch == branch
    assert fake.bodies[0]["structured_outputs"] == {"regex": processor.regex}
    assert REPLY_REGEX in processor.regex and len(fake.bodies) == 1


def test_a_reply_that_loops_is_ended_not_steered(smol_spec, tmp_path):
    generation, _, fake = _decoded(smol_spec, tmp_path, "I am so glad. " + "ha ha ha ha " * 40,
                                   reply=True)
    assert generation.text == "I am so glad."  # the echo guard ends it at its last sentence
    assert generation.stats.finish_reason == "loop" and len(fake.bodies) == 1


SAID = "Caroline is working on her career in counseling and mental health for trans people."


def test_a_reply_that_says_a_sentence_again_ends_before_it(smol_spec, tmp_path):
    # once, not three times in a row: the loop guard alone let the repeat through
    output = f"{SAID}\n\nShe is happy.\n\n{SAID}\n\nShe is happy."
    generation, processor, fake = _decoded(smol_spec, tmp_path, output, reply=True, eos=True)
    assert processor.branch == "reply" and generation.stats.finish_reason == "loop"
    assert generation.text.startswith(f"{SAID}\n\nShe is happy.")
    assert generation.text.count("counseling") == 1 and len(fake.bodies) == 1
    assert len(generation.tokens) < len(fake.script)


@pytest.mark.parametrize("models, named, message", [
    (("a", "b"), None, "serves a, b: set served_model"),
    (("a",), "b", "serves a: set served_model"),
])
def test_the_served_model_must_be_named_where_unclear(models, named, message):
    server = VllmServer(URL, model=named,
                        transport=httpx.MockTransport(ScriptedVllm([], models=models)))
    with pytest.raises(RemoteServerError, match=message):
        server.window()


@pytest.mark.parametrize("answer", [
    {"error": {"message": "This model's maximum context length is 4096", "code": 400}},
    {"object": "error", "message": "This model's maximum context length is 4096"},
])
def test_an_error_answer_is_one_line_with_the_servers_message(smol_spec, tmp_path, answer):
    def refuse(request):
        if request.url.path == "/v1/models":
            return ScriptedVllm([])(request)
        return httpx.Response(400, json=answer)

    runtime = _runtime(smol_spec, tmp_path, refuse)
    with pytest.raises(RemoteServerError,
                       match="vllm at http://vllm answered 400: This model's maximum"):
        runtime.generate([1, 2, 3], max_tokens=5).finish()


def test_text_without_token_ids_names_the_version_needed(smol_spec, tmp_path):
    def old_vllm(request):
        if request.url.path == "/v1/models":
            return ScriptedVllm([])(request)
        chunk = {"choices": [{"index": 0, "text": "hi", "finish_reason": None}]}
        return httpx.Response(200, content=f"data: {json.dumps(chunk)}\n\n".encode())

    runtime = _runtime(smol_spec, tmp_path, old_vllm)
    with pytest.raises(RemoteServerError, match="return_token_ids .vLLM 0.10.2 or later"):
        runtime.generate([1, 2, 3], max_tokens=5).finish()


def test_the_check_says_what_it_serves_and_whether_the_constraint_works():
    server = VllmServer(URL, transport=httpx.MockTransport(ScriptedVllm([])))
    report = server.check()
    assert report == {"answers": True, "serves": "/models/smol", "n_ctx": 4096, "slots": None,
                      "constraint_works": True, "cached_tokens_reported": True}
    assert server.slot_action(0, "save", "x.bin") is None


def test_models_list_and_doctor_show_a_vllm_entry(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from memgpt_local.bench.llama_server_process import remote_entry
    from memgpt_local.cli import cli
    from memgpt_local.llm.models import Registry
    from memgpt_local.processes import free_port

    url = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "models.toml").write_text(remote_entry(
        Registry.load().get("smollm2-135m"), "smol-vllm", url, server_kind="vllm",
        served_model="smol"))
    monkeypatch.setenv("MEMGPT_LOCAL_HOME", str(tmp_path))
    assert f"runs on vllm at {url}" in CliRunner().invoke(cli, ["models", "list"]).output
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0
    assert f"on vllm at {url}: not answering (vllm at {url} cannot be reached" in result.output
