"""An agent of ours written as a Letta Agent File (.af), in the shape Letta's AgentFileSchema
takes (tests/data/letta_agent_file.schema.json, generated from Letta 0.16.8's own classes).

Core-memory blocks become blocks (label, value, limit, description, read-only); messages keep
their order, dates and the in-context ones: a call of ours is an assistant message with its
thoughts as reasoning and the call as a tool call, its result a tool message answering that
call, a system alert a user message in Letta's JSON alert form, as Letta writes them; our
functions are exported as Letta's core tools of the same names (no code); the tool rules are
already in Letta's form. What Letta has no field for (the summary, our settings, the model's
alias) travels in the agent's metadata under "memgpt_local", which agentfile.py reads back.
"""

import json
from datetime import UTC, datetime

from ..memory.agents import AgentRecord
from ..memory.core import Block
from ..memory.messages import Message
from .agentfile import LETTA_AGENT_TYPES, LETTA_NAMES, OUR_KEY, call_text
from .functions import FUNCTIONS
from .settings import AgentSettings

TOOL_TYPES = {"core_memory_append": "letta_memory_core", "core_memory_replace":
              "letta_memory_core", "core_memory_rethink": "letta_sleeptime_core"}  # else letta_core
EXPORTED_FUNCTIONS = ("send_message", "core_memory_append", "core_memory_replace",
                      "conversation_search", "archival_memory_insert", "archival_memory_search")


def letta_name(function: str | None) -> str | None:
    """Letta's name for a function of ours."""
    return LETTA_NAMES.get(function or "", function)


def agent_file(record: AgentRecord, messages: list[Message], instructions: str) -> dict:
    """The .af document of one agent with its messages (in recall order) and its system
    prompt (its own instructions, else ours)."""
    blocks = [_block(f"block-{i}", block) for i, block in
              enumerate(record.core_memory.blocks.values())]
    settings = AgentSettings.of(record)
    exported = EXPORTED_FUNCTIONS + tuple(settings.extra_functions)
    tools = [_tool(f"tool-{i}", name) for i, name in enumerate(exported)]
    letta_messages, in_context = _messages(messages, set(record.in_context))
    call_texts = {f"message-{m.seq}": m.content for m in messages
                  if m.role == "function_call" and m.content != _canonical(m)}
    agent = {
        "id": "agent-0", "name": record.name,
        "agent_type": LETTA_AGENT_TYPES[settings.architecture],
        "system": instructions, "description": None,
        "block_ids": [b["id"] for b in blocks], "tool_ids": [t["id"] for t in tools],
        "tool_rules": settings.tool_rules,
        "messages": letta_messages, "in_context_message_ids": in_context,
        "llm_config": {"model": record.model, "model_endpoint_type": "llamacpp",
                       "context_window": settings.n_ctx,
                       "put_inner_thoughts_in_kwargs": True},
        "embedding_config": {"embedding_endpoint_type": "hugging-face",
                             "embedding_model": "local", "embedding_dim": 384,
                             "embedding_chunk_size": 300},
        "metadata": {OUR_KEY: {"model": record.model, "summary": record.summary,
                               "settings": settings.to_dict(),
                               "call_texts": call_texts}}}
    return {"agents": [agent], "groups": [], "blocks": blocks, "files": [], "sources": [],
            "tools": tools, "mcp_servers": [], "metadata": {},
            "created_at": datetime.now(UTC).isoformat()}


def _parsed(message: Message) -> tuple[str, dict] | None:
    """A stored call's thoughts and arguments (None: the call did not parse)."""
    try:
        call = json.loads(message.content)
    except json.JSONDecodeError:
        return None
    if not isinstance(call, dict) or not message.function_name:
        return None
    arguments = message.function_args if message.function_args is not None else {}
    return str(call.get("thoughts", "")), arguments


def _canonical(message: Message) -> str | None:
    """The text an import writes for a call (None: the call does not parse)."""
    parsed = _parsed(message)
    return call_text(parsed[0], message.function_name or "", parsed[1]) if parsed else None


def _block(block_id: str, block: Block) -> dict:
    return {"id": block_id, "label": block.label, "value": block.value, "limit": block.limit,
            "description": block.description or None, "read_only": block.read_only,
            "is_template": False, "metadata": {}}


def _tool(tool_id: str, name: str) -> dict:
    function = FUNCTIONS[name]
    schema = {"name": letta_name(name), "description": function.description,
              "parameters": function.arguments_schema([])}
    return {"id": tool_id, "name": letta_name(name), "description": function.description,
            "tool_type": TOOL_TYPES.get(name, "letta_core"), "source_type": "python",
            "json_schema": schema, "tags": ["letta_core"], "return_char_limit": 6000}


def _messages(messages: list[Message], in_context: set[int]) -> tuple[list[dict], list[str]]:
    """Ours as Letta's messages; each call's result answers that call's id."""
    out: list[dict] = []
    context_ids: list[str] = []
    last_call = None
    for message in messages:
        letta_id = f"message-{message.seq}"
        letta = _message(message, letta_id, last_call)
        if message.role == "function_call":
            last_call = f"call-{message.seq}"
        out.append({"id": letta_id, "created_at": message.stamp(), **letta})
        if message.id in in_context:
            context_ids.append(letta_id)
    return out, context_ids


def _message(message: Message, letta_id: str, last_call: str | None) -> dict:
    if message.role == "function_call":
        return _assistant(message, f"call-{message.seq}")
    if message.role == "function_result":
        status = "error" if message.content.startswith("Error:") else "success"
        return {"role": "tool", "name": letta_name(message.function_name),
                "tool_call_id": last_call,
                "content": [_text(message.content)],
                "tool_returns": [{"tool_call_id": last_call, "status": status,
                                  "func_response": message.content}]}
    if message.role == "system":
        alert = json.dumps({"type": "system_alert", "message": message.content})
        return {"role": "user", "content": [_text(alert)]}
    return {"role": message.role, "content": [_text(message.content)]}


def _assistant(message: Message, call_id: str) -> dict:
    """A call of ours: its thoughts as reasoning, the call as a tool call (a call that did
    not parse keeps its raw text, with no tool call)."""
    parsed = _parsed(message)
    if parsed is None:
        return {"role": "assistant", "content": [_text(message.content)]}
    thoughts, arguments = parsed
    return {"role": "assistant",
            "content": [{"type": "reasoning", "reasoning": thoughts,
                         "is_native": False, "signature": None}],
            "tool_calls": [{"id": call_id, "type": "function", "function": {
                "name": letta_name(message.function_name),
                "arguments": json.dumps(arguments)}}]}


def _text(text: str) -> dict:
    return {"type": "text", "text": text}
