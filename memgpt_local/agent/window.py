"""How an agent's prompt is made up right now: tokens per part, the thresholds, the KV cache."""

from typing import TYPE_CHECKING

from .queue import CONTEXT_HEAD

if TYPE_CHECKING:
    from .loop import Agent

PARTS = ("instructions", "core_memory", "summary", "queue")


def context_report(agent: "Agent") -> dict:
    """The next prompt as the queue manager builds it, counted with the model's tokenizer:
    tokens per part (they add up to the prompt), the reply's reserve, what is free, the
    warning and flush thresholds, and what the KV cache holds for it."""
    parts = agent.queue_manager.parts()
    prompt = parts.prompt(agent.runtime)
    head = prompt.message_tokens[:CONTEXT_HEAD]
    tokens = dict(zip(PARTS, [*head, len(prompt.tokens) - sum(head)], strict=True))
    settings, window = agent.settings, agent.runtime.n_ctx
    return {
        "window": window,
        "prompt_tokens": len(prompt.tokens),
        "parts": tokens,
        "reply_reserve": settings.response_tokens,
        "free": max(0, window - len(prompt.tokens) - settings.response_tokens),
        "warning_tokens": int(settings.warning_fraction * window),
        "flush_tokens": window - settings.response_tokens,
        "queue_messages": len(agent.queue),
        "kv_cache": agent.runtime.cache_report(prompt.tokens, prompt.static_prefix,
                                               agent.record.name),
    }
