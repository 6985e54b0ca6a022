"""Tool calls in a model's own format, as its GGUF chat template defines them.

A model trained on tool calls writes them in one syntax, which its chat template spells out:
Hermes 2 Pro / Qwen2.5 (`<tool_call>{"name": ..., "arguments": ...}</tool_call>`), Llama 3.1-3.3
(`{"name": ..., "parameters": ...}`) and Mistral Nemo (`[TOOL_CALLS][{"name": ..., "arguments":
..., "id": ...}]`), recognised by the markers llama.cpp's common/chat looks for. A template
with none of them gets ours (`{"function": ..., "arguments": ...}`, listed in the
instructions). Each format gives the call's JSON schema (a discriminated union on the name,
each function's own arguments), the regex the constraint compiles (the JSON between the
format's opening and closing text), the call as the model writes it, the parse back, and the
messages its template renders a past call and its result from.
"""

import json
from dataclasses import dataclass, field

NAME_PATTERN = "[a-zA-Z0-9]{9}"  # a Mistral tool-call id
_REGEX_SPECIAL = set(r"\.^$*+?{}[]|()/-#&~")


def literal_regex(text: str) -> str:
    """A regex that matches exactly the text (in the syntax Outlines and gbnf.py read)."""
    escaped = {"\n": r"\n", "\t": r"\t", "\r": r"\r"}
    return "".join(escaped.get(c, "\\" + c if c in _REGEX_SPECIAL else c) for c in text)


@dataclass(frozen=True)
class ToolFormat:
    """One syntax of tool calls: the JSON object's keys and the text around it."""

    name: str
    name_key: str = "name"
    arguments_key: str = "arguments"
    prefix: str = ""
    suffix: str = ""
    in_list: bool = False  # the object sits in a JSON list (Mistral)
    call_id: bool = False  # the object carries a 9-character id (Mistral)
    native: bool = True  # the chat template lists the tools and renders calls
    whitespace: str = "[ ]?"  # between JSON tokens: templates write ", " and ": "
    markers: tuple[str, ...] = field(default=())  # what in a template names this format

    def call_schema(self, functions: list[dict]) -> dict:
        """One JSON schema for a call of any of these functions ({name, parameters} each)."""
        variants = []
        for function in functions:
            properties = {self.name_key: {"const": function["name"]},
                          self.arguments_key: function["parameters"]}
            if self.call_id:
                properties["id"] = {"type": "string", "pattern": NAME_PATTERN}
            variants.append({"type": "object", "properties": properties,
                             "required": list(properties), "additionalProperties": False})
        return variants[0] if len(variants) == 1 else {"oneOf": variants}

    def wrap_regex(self, json_regex: str) -> str:
        """The regex of the whole call, given the regex of its JSON object."""
        body = rf"\[{json_regex}\]" if self.in_list else json_regex
        return literal_regex(self.prefix) + body + literal_regex(self.suffix)

    def call_text(self, function: str, arguments: dict, call_id: str = "") -> str:
        """A call as the model writes it."""
        data: dict = {self.name_key: function, self.arguments_key: arguments}
        if self.call_id:
            data["id"] = call_id or "a" * 9
        body = json.dumps([data] if self.in_list else data, ensure_ascii=False)
        return f"{self.prefix}{body}{self.suffix}"

    def parse(self, text: str) -> dict | None:
        """The call in a model's output as {"function", "arguments"}, or None if the output
        is not a call in this format."""
        stripped = text.strip()
        if not (stripped.startswith(self.prefix.strip()) and stripped.endswith(
                self.suffix.strip())):
            return None
        body = stripped[len(self.prefix.strip()):len(stripped) - len(self.suffix.strip())]
        try:
            data = json.loads(body)
        except json.JSONDecodeError:
            return None
        if self.in_list:
            data = data[0] if isinstance(data, list) and len(data) == 1 else None
        if not isinstance(data, dict) or not isinstance(data.get(self.name_key), str):
            return None
        return {"function": data[self.name_key], "arguments": data.get(self.arguments_key)}

    @property
    def opener(self) -> str:
        """The text every call of this format begins with."""
        return self.prefix.strip() or ("[" if self.in_list else "{")

    def starts_call(self, text: str) -> bool:
        """Whether an output begins as a call in this format (else it is a reply)."""
        return text.lstrip().startswith(self.opener)


# ours, for templates that define no tool calls (the packaged models')
JSON = ToolFormat("json", name_key="function", native=False, whitespace="")
HERMES = ToolFormat("hermes", prefix="<tool_call>\n", suffix="\n</tool_call>",
                    markers=("<tool_call>",))
LLAMA3 = ToolFormat("llama3", arguments_key="parameters",
                    markers=("<|start_header_id|>ipython<|end_header_id|>",))
MISTRAL = ToolFormat("mistral", prefix="[TOOL_CALLS]", in_list=True, call_id=True,
                     markers=("[TOOL_CALLS]",))
FORMATS = {f.name: f for f in (HERMES, LLAMA3, MISTRAL, JSON)}


def detect(template: str) -> ToolFormat:
    """The tool-call format a chat template defines (ours where it defines none)."""
    for candidate in (MISTRAL, HERMES, LLAMA3):
        if all(marker in template for marker in candidate.markers):
            return candidate
    if "<|python_tag|>" in template and "<|start_header_id|>" in template:
        return LLAMA3
    return JSON


def tool_spec(name: str, description: str, parameters: dict) -> dict:
    """A function as chat templates take it in `tools` (OpenAI's form)."""
    return {"type": "function", "function": {"name": name, "description": description,
                                             "parameters": parameters}}


def plain_parameters(schema: dict) -> dict:
    """A function's argument schema as a prompt shows it: types, enums and descriptions, not
    the constraint's patterns (they are long and mean nothing to a model)."""
    kept = {"type", "enum", "description", "properties", "required", "minimum", "maximum"}
    if not isinstance(schema, dict):
        return schema
    plain = {k: v for k, v in schema.items() if k in kept}
    if "properties" in plain:
        plain["properties"] = {k: plain_parameters(v) for k, v in plain["properties"].items()}
    return plain


def call_id(seq: int) -> str:
    """A stable 9-character id for a stored call (Mistral's templates require one)."""
    return f"call{seq:05d}"[-9:]


def assistant_call(function: str, arguments: dict, seq: int) -> dict:
    """A past call as the assistant message a template renders with `tool_calls`."""
    return {"role": "assistant", "content": "", "tool_calls": [{
        "id": call_id(seq), "type": "function",
        "function": {"name": function, "arguments": arguments}}]}


def tool_result(function: str, result: str, seq: int) -> dict:
    """A call's result as the `tool` message a template renders."""
    return {"role": "tool", "name": function, "content": result, "tool_call_id": call_id(seq)}

