"""What one step does with the model's output, per architecture: which constraint decodes it,
how its reply text streams, and how it is run and stored.

`CallSteps` (memgpt): the output is one JSON call; send_message's text streams as it is
written; request_heartbeat asks for another step. `ReplySteps` (reply): the output is a plain
reply (streamed, sent, the turn ends) or one call (run; another step follows).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..llm.base import GenerationStats
from ..memory.messages import Message
from . import context as ctx
from .architectures import (
    REPLY_FUNCTION,
    stored_call,
    tidy_reply,
    without_repeats,
)
from .functions import Outcome
from .streaming import PlainStreamer, ReplyStreamer

if TYPE_CHECKING:
    from .loop import Agent

REPLY, CALL = "reply", "call"


@dataclass
class Done:
    """A step's output run: the parsed call (None: none parsed), what happened, and whether
    the step was a plain reply or a call."""

    call: dict | None
    outcome: Outcome
    kind: str = CALL


class Streamer(Protocol):
    """Takes the generated pieces; passes the user's reply text on as it comes."""

    emitted: int

    def feed(self, piece: str) -> None:
        """Take the next generated piece."""


class CallSteps:
    """The paper's steps: one constrained JSON call each."""

    def __init__(self, agent: "Agent"):
        self.agent = agent
        self._processors: dict[tuple[str, ...], Callable] = {}

    def processor(self, functions: tuple[str, ...]) -> Callable:
        """The constraint's processor for calls of these functions only; one per distinct
        set, its index built once (and cached by the runtime, in memory and on disk)."""
        if functions not in self._processors:
            schema = self.agent.call_schema(functions)
            self._processors[functions] = self.agent.runtime.constraint(schema).processor()
        return self._processors[functions]

    def streamer(self, on_text: Callable[[str], None] | None) -> Streamer:
        """send_message's text, out of the call being written."""
        return ReplyStreamer(on_text)

    def run(self, text: str, stats: GenerationStats) -> Done:
        """Run the completed call and store it with its result, in one transaction."""
        call, error = parse_call(text, stats.finish_reason, self.agent.settings.response_tokens)
        outcome = self.agent.run_call(call, error, Message(
            "function_call", text, function_name=(call or {}).get("function"),
            function_args=(call or {}).get("arguments"), tokens=stats.generated_tokens))
        return Done(call, outcome)

    def note(self, outcome: Outcome) -> str:
        """The result as stored: with the heartbeat alert where another step follows."""
        if outcome.failed:
            return f"{outcome.result}\n{ctx.alert('heartbeat_after_error')}"
        if outcome.heartbeat:
            return f"{outcome.result}\n{ctx.alert('heartbeat')}"
        return outcome.result


class ReplySteps:
    """The reply architecture's steps: a plain reply, or one call."""

    def __init__(self, agent: "Agent"):
        self.agent = agent
        self.tool_format = agent.context.architecture.tool_format
        self._processors: dict[tuple[str, ...], Callable] = {}

    def processor(self, functions: tuple[str, ...]) -> Callable:
        """A reply (where send_message, meaning a reply, is allowed) or a call of the other
        functions allowed, from the first token on; one per distinct set."""
        if functions not in self._processors:
            calls = tuple(f for f in functions if f != REPLY_FUNCTION)
            schema = self.agent.call_schema(calls) if calls else None
            runtime, fmt = self.agent.runtime, self.tool_format
            if REPLY_FUNCTION in functions:
                constraint = runtime.reply_constraint(schema, fmt)
            else:  # no reply offered: some function is
                assert schema is not None
                constraint = runtime.constraint(schema, fmt)
            self._processors[functions] = constraint.processor()
        return self._processors[functions]

    def streamer(self, on_text: Callable[[str], None] | None) -> Streamer:
        """The output itself, unless it is a call."""
        return PlainStreamer(on_text, self.tool_format.opener)

    def run(self, text: str, stats: GenerationStats) -> Done:
        """Send a reply, or run a call (another step follows it); stored as the paper's agent
        stores them, so the agent can switch architecture."""
        if not self.tool_format.starts_call(text):
            return self._reply(text, stats)
        call, error = self._parse(text, stats)
        message = (call or {}).get("arguments", {})
        if (call or {}).get("function") == REPLY_FUNCTION and isinstance(message, dict) \
                and isinstance(message.get("message"), str):  # a reply written as a call
            return self._reply(message["message"], stats)
        if call is not None:
            call = with_heartbeat(call, self.agent)
        arguments = call.get("arguments") if call is not None else None
        stored = (stored_call(call["function"], arguments)
                  if call is not None and isinstance(arguments, dict)
                  else Message("function_call", text))
        stored.tokens = stats.generated_tokens
        outcome = self.agent.run_call(call, error, stored)
        return Done(call, Outcome(outcome.function, outcome.result, outcome.failed, True))

    def _parse(self, text: str, stats: GenerationStats) -> tuple[dict | None, str]:
        """The call in the output, in the agent's tool format, or an error for the model."""
        limit = self.agent.settings.response_tokens
        if not self.tool_format.native:
            return parse_call(text, stats.finish_reason, limit)
        call = self.tool_format.parse(text)
        return (call, "") if call is not None else (None, unparsed(stats.finish_reason, limit))

    def _reply(self, text: str, stats: GenerationStats) -> Done:
        reply = tidy_reply(without_repeats(text) if stats.finish_reason == "loop" else text)
        call = {"function": REPLY_FUNCTION, "arguments": {"message": reply}}
        stored = stored_call(REPLY_FUNCTION, {"message": reply})
        stored.tokens = stats.generated_tokens
        return Done(call, self.agent.run_call(call, "", stored), REPLY)

    def note(self, outcome: Outcome) -> str:
        """The result as stored: as it is (another step follows every call)."""
        return outcome.result


def with_heartbeat(call: dict, agent: "Agent") -> dict:
    """A reply-architecture call with request_heartbeat true where its function takes it:
    every call gets another step."""
    function = agent.functions.get(str(call.get("function")))
    arguments = call.get("arguments")
    if function is None or not function.takes_heartbeat or not isinstance(arguments, dict):
        return call
    return {**call, "arguments": {**arguments, "request_heartbeat": True}}


def parse_call(text: str, finish_reason: str, limit: int) -> tuple[dict | None, str]:
    """The parsed call, or an error written for the model."""
    try:
        call = json.loads(text)
    except json.JSONDecodeError:
        return None, unparsed(finish_reason, limit)
    return (call, "") if isinstance(call, dict) else (None, "Error: expected a JSON object.")


def unparsed(finish_reason: str, limit: int) -> str:
    """The error for an output that is no call, written for the model: why it ended."""
    if finish_reason == "loop":
        return ("Error: your output was stopped because it repeated the same words over and "
                "over. Say something new, in a few words.")
    if finish_reason == "length":
        return (f"Error: your output was cut off at {limit} tokens. Keep thoughts short and "
                "split long messages.")
    return "Error: your output was not one JSON function call."


def steps_for(agent: "Agent") -> CallSteps | ReplySteps:
    """The step kind of the agent's architecture."""
    return ReplySteps(agent) if agent.settings.replies_end_turn else CallSteps(agent)
