"""The client of a vLLM server (completion.CompletionServer), through its OpenAI-compatible
`/v1/completions` with vLLM's own fields.

The prompt goes as token ids; the call constraint as `structured_outputs.regex` (the very regex
the local constraint compiles); steering as `allowed_token_ids`; the output comes back as token
ids (`return_token_ids`, vLLM 0.10.2 and later). Prefix reuse is vLLM's automatic prefix caching;
the tokens it took from its cache are read from `usage.prompt_tokens_details.cached_tokens`,
which vLLM reports when started with `--enable-prompt-tokens-details` (without it every prompt
token counts as evaluated). vLLM has no slots and no slot files.
"""

from collections.abc import Generator
from typing import Any

from ...errors import RemoteServerError
from .completion import (
    CompletionEvent,
    CompletionRequest,
    allowed_ids,
    count_or_none,
    token_list,
)
from .server_http import ServerHttp

DEFAULT_PARALLEL = 8  # turns at once where the server does not say (serve --parallel sets it)
PROBE_ANSWER = "42"
PROBE_PROMPT = "Count the sheep in the field, one by one, and then say a number. " * 6
FINISH = {"stop": "eos", "length": "limit"}


class VllmServer(ServerHttp):
    """One vLLM server, reached over HTTP."""

    kind = "vllm"

    def __init__(self, url: str, api_key: str | None = None, model: str | None = None,
                 **options: Any) -> None:
        super().__init__(url, api_key, **options)
        self.model = model
        self._card: dict | None = None

    def card(self) -> dict:
        """The served model's entry in `/v1/models` (the one named, or the only one)."""
        if self._card is None:
            models = self.json("GET", "/v1/models").get("data") or []
            names = [str(m.get("id")) for m in models]
            chosen = [m for m in models if self.model in (None, m.get("id"))]
            if not chosen or (self.model is None and len(models) > 1):
                raise self.fault(f"serves {', '.join(names) or 'no model'}: set served_model "
                                 "in the entry to one of them")
            self._card = chosen[0]
        return self._card

    def window(self) -> int:
        """The served model's max_model_len."""
        return int(self.card().get("max_model_len") or 0)

    def slots(self) -> int:
        """vLLM batches what its memory holds and does not say how many: a default."""
        return DEFAULT_PARALLEL

    def stream(self, request: CompletionRequest) -> Generator[CompletionEvent, None, None]:
        """The completion's tokens as they come; its end last, with the usage."""
        body = {**self.body(request), "stream": True,
                "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
        stop, evaluated = None, None
        for chunk in self.events("/v1/completions", body):
            event = self._event(chunk)
            evaluated = event.evaluated if event.evaluated is not None else evaluated
            stop = stop or event.stop
            if event.tokens:
                yield CompletionEvent(event.tokens, None, evaluated)
        yield CompletionEvent([], stop or "limit", evaluated)

    def complete(self, request: CompletionRequest) -> CompletionEvent:
        """One completion, not streamed."""
        return self._event(self.json("POST", "/v1/completions", json=self.body(request)))

    def body(self, request: CompletionRequest) -> dict:
        """The /v1/completions body for a request."""
        sampling = request.sampling
        body = {"model": self.card()["id"], "prompt": request.prompt,
                "max_tokens": request.n_predict, "temperature": sampling.temperature,
                "top_k": sampling.top_k, "top_p": sampling.top_p, "min_p": sampling.min_p,
                "repetition_penalty": sampling.repeat_penalty, "seed": sampling.seed,
                "return_token_ids": True, "add_special_tokens": False}
        if request.regex is not None:
            body["structured_outputs"] = {"regex": request.regex}
        if request.allowed is not None:
            body["allowed_token_ids"] = allowed_ids(request.allowed)
        return body

    def slot_action(self, slot: int, action: str, filename: str) -> dict | None:
        """vLLM keeps no slot files."""
        return None

    def adapters(self) -> dict[str, float]:
        """None: the registry gives no vLLM entry an adapter (it loads no GGUF ones)."""
        return {}

    def check(self) -> dict:
        """Whether the server answers, what it serves, whether it applies the constraint (a
        probe whose regex allows one answer only) and whether it reports cached tokens (the
        same prompt twice)."""
        try:
            card = self.card()
            probes = [self.json("POST", "/v1/completions", json={
                "model": card["id"], "prompt": PROBE_PROMPT, "max_tokens": 4,
                "temperature": 0, "structured_outputs": {"regex": PROBE_ANSWER}})
                for _ in range(2)]
        except RemoteServerError as exc:
            return {"answers": False, "error": str(exc)}
        text = (probes[0].get("choices") or [{}])[0].get("text")
        return {"answers": True, "serves": card.get("root") or card.get("id"),
                "n_ctx": card.get("max_model_len"), "slots": None,
                "constraint_works": text == PROBE_ANSWER,
                "cached_tokens_reported": bool(_cached(probes[1].get("usage")))}

    def _event(self, chunk: dict) -> CompletionEvent:
        """A /v1/completions answer or streamed chunk as a CompletionEvent."""
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else {}
        if not isinstance(choice, dict):
            raise self.fault(f"sent a choice that is not an object: {str(choice)[:80]!r}")
        if choice.get("text") and choice.get("token_ids") is None:
            raise self.fault("sent text without token ids: it needs return_token_ids "
                             "(vLLM 0.10.2 or later)")
        reason = choice.get("finish_reason")
        return CompletionEvent(token_list(choice.get("token_ids")),
                               FINISH.get(reason, "limit") if reason else None,
                               _evaluated(chunk.get("usage")))


def _cached(usage: Any) -> int:
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    return (count_or_none(details.get("cached_tokens")) if isinstance(details, dict)
            else None) or 0


def _evaluated(usage: Any) -> int | None:
    """Prompt tokens evaluated: the prompt less what the prefix cache held."""
    prompt = count_or_none(usage.get("prompt_tokens")) if isinstance(usage, dict) else None
    return None if prompt is None else max(0, prompt - _cached(usage))
