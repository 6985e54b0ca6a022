"""Tool rules: which functions an agent may call at each step of a turn, and whether a call
ends the turn, in Letta's kinds and names (so agent files carry over).

The loop builds every step's call constraint from only the functions `RuleSolver.allowed`
returns, so a rule can never be broken by what the model writes. Kinds:
- run_first: the first call of a turn (several: any of them);
- exit_loop: this call ends the turn; continue_loop: this call always gets another step;
- constrain_child_tools: after this call, only `children` (and another step follows);
- max_count_per_step: at most `max_count_limit` calls of this function in one turn;
- required_before_exit: the turn does not end before this function was called (no exit_loop
  call before it, and once the steps the chain has left are just enough, only what is still
  required);
- conditional: after this call, the next is `child_output_mapping[result]` (the result's
  text, trimmed, compared without case), else `default_child`, else any function; with
  `require_output_mapping` and no match, the turn stops.

Under the reply architecture (`replies_end_turn`), a rule naming send_message means a plain
reply, and a reply always ends the turn: it is offered only where the rules let the turn end
after it (no continue_loop or children on send_message, nothing else still required).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("run_first", "exit_loop", "continue_loop", "constrain_child_tools",
         "max_count_per_step", "required_before_exit", "conditional")
KIND_FIELDS = {"constrain_child_tools": {"children"}, "max_count_per_step": {"max_count_limit"},
               "conditional": {"default_child", "child_output_mapping",
                               "require_output_mapping"}}
LETTA_EXTRA_FIELDS = {"prompt_template", "args", "child_arg_nodes", "id"}  # read, not used
MAX_RULES = 100
REPLY = "send_message"  # under the reply architecture: a plain reply
CONTINUING = ("continue_loop", "constrain_child_tools", "conditional")  # another step follows


class ToolRuleError(ValueError):
    """A tool rule or rule set that cannot be used; the text names the rule."""


@dataclass
class ToolRule:
    """One rule, as Letta writes it."""

    type: str
    tool_name: str
    children: list[str] = field(default_factory=list)
    max_count_limit: int = 0
    default_child: str | None = None
    child_output_mapping: dict[str, str] = field(default_factory=dict)
    require_output_mapping: bool = False

    def __str__(self) -> str:
        return f"{self.type} on {self.tool_name}"

    def to_dict(self) -> dict:
        """The rule in Letta's JSON shape (only the fields of its kind)."""
        data: dict[str, Any] = {"type": self.type, "tool_name": self.tool_name}
        for name in sorted(KIND_FIELDS.get(self.type, ())):
            data[name] = getattr(self, name)
        return data

    def next_function(self, result: str) -> str | None:
        """A conditional rule's child for a result (None: no case and no default)."""
        wanted = result.strip().casefold()
        for value, child in self.child_output_mapping.items():
            if str(value).strip().casefold() == wanted:
                return child
        return self.default_child


def parse_rule(data: Any, functions: Iterable[str]) -> ToolRule:
    """A rule from its JSON form, checked against the agent's functions."""
    names = list(functions)
    if not isinstance(data, dict):
        raise ToolRuleError(f"a tool rule must be an object, got {data!r}.")
    kind, tool = data.get("type"), data.get("tool_name")
    if kind not in KINDS:
        raise ToolRuleError(f"tool rule {data!r}: type must be one of {', '.join(KINDS)}.")
    label = f"tool rule {kind} on {tool!r}"
    unknown = set(data) - {"type", "tool_name"} - KIND_FIELDS.get(kind, set()) - LETTA_EXTRA_FIELDS
    if unknown:
        raise ToolRuleError(f"{label}: unknown fields {sorted(unknown)}.")
    _check_function(label, tool, names)
    rule = ToolRule(kind, str(tool))
    if kind == "constrain_child_tools":
        rule.children = _children(label, data.get("children"), names)
    elif kind == "max_count_per_step":
        rule.max_count_limit = _count(label, data.get("max_count_limit"))
    elif kind == "conditional":
        _conditional(rule, label, data, names)
    return rule


def _check_function(label: str, name: Any, names: list[str]) -> None:
    if name not in names:
        raise ToolRuleError(f"{label}: unknown function {name!r}; functions: "
                            f"{', '.join(names)}.")


def _children(label: str, children: Any, names: list[str]) -> list[str]:
    if not isinstance(children, list) or not children:
        raise ToolRuleError(f"{label}: children must be a non-empty list of functions.")
    for child in children:
        _check_function(label, child, names)
    return list(dict.fromkeys(children))


def _count(label: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
        raise ToolRuleError(f"{label}: max_count_limit must be a whole number from 1 to 100.")
    return value


def _conditional(rule: ToolRule, label: str, data: dict, names: list[str]) -> None:
    mapping = data.get("child_output_mapping")
    if not isinstance(mapping, dict) or not mapping:
        raise ToolRuleError(f"{label}: child_output_mapping must be a non-empty object.")
    for child in mapping.values():
        _check_function(label, child, names)
    if data.get("default_child") is not None:
        _check_function(label, data["default_child"], names)
    if not isinstance(data.get("require_output_mapping", False), bool):
        raise ToolRuleError(f"{label}: require_output_mapping must be true or false.")
    rule.child_output_mapping = {str(k): v for k, v in mapping.items()}
    rule.default_child = data.get("default_child")
    rule.require_output_mapping = data.get("require_output_mapping", False)


@dataclass(frozen=True)
class Call:
    """A call made earlier in the turn: the function and its result's text."""

    function: str
    result: str = ""


@dataclass
class Allowed:
    """The functions the next step may call, and the rules that narrowed them (for errors)."""

    functions: list[str]
    narrowed_by: list[ToolRule] = field(default_factory=list)

    def keep(self, keep: Iterable[str], rule: ToolRule) -> None:
        """Keep only some functions, because of a rule."""
        kept = set(keep)
        narrowed = [f for f in self.functions if f in kept]
        if narrowed != self.functions:
            self.functions = narrowed
            self.narrowed_by.append(rule)


class RuleSolver:
    """An agent's rules over its functions: what each step may call, whether a call ends the
    turn."""

    def __init__(self, rules: list[ToolRule], functions: list[str],
                 replies_end_turn: bool = False):
        self.rules = rules
        self.functions = functions
        self.replies_end_turn = replies_end_turn

    def of(self, kind: str, function: str | None = None) -> list[ToolRule]:
        """The rules of a kind (on a function)."""
        return [r for r in self.rules if r.type == kind
                and (function is None or r.tool_name == function)]

    def allowed(self, history: list[Call], step: int, max_chain: int) -> Allowed:
        """The functions step number `step` (0-based) of a turn may call, after `history`."""
        allowed = Allowed(list(self.functions))
        first = self.of("run_first")
        if not history and first:
            allowed.keep([r.tool_name for r in first], first[0])
        if history:
            self._after(allowed, history[-1])
        called = [c.function for c in history]
        for rule in self.of("max_count_per_step"):
            if called.count(rule.tool_name) >= rule.max_count_limit:
                allowed.keep(set(self.functions) - {rule.tool_name}, rule)
        self._before_exit(allowed, self.required_left(history), max_chain - step)
        if self.replies_end_turn and REPLY in allowed.functions:
            blocker = self._reply_blocker(history)
            if blocker is not None:
                allowed.keep([f for f in allowed.functions if f != REPLY], blocker)
        return allowed

    def _reply_blocker(self, history: list[Call]) -> ToolRule | None:
        """The rule that keeps a reply from ending the turn now (None: a reply may end it)."""
        going_on = [r for r in self.rules if r.tool_name == REPLY and r.type in CONTINUING]
        if going_on:
            return going_on[0]
        left = [f for f in self.required_left(history) if f != REPLY]
        return self.of("required_before_exit", left[0])[0] if left else None

    def _before_exit(self, allowed: Allowed, required: list[str], steps_left: int) -> None:
        """While functions are required before the turn ends: no call that ends it early,
        and only required calls once the steps left are just enough for them."""
        if not required:
            return
        rule = self.of("required_before_exit", required[0])[0]
        if len(required) >= steps_left:
            allowed.keep(required, rule)
        allowed.keep([f for f in allowed.functions if not self.of("exit_loop", f)
                      or set(required) <= {f}], rule)

    def _after(self, allowed: Allowed, last: Call) -> None:
        for rule in self.of("constrain_child_tools", last.function):
            allowed.keep(rule.children, rule)
        for rule in self.of("conditional", last.function):
            child = rule.next_function(last.result)
            if child is not None:
                allowed.keep([child], rule)
            elif rule.require_output_mapping:
                allowed.keep([], rule)

    def required_left(self, history: list[Call]) -> list[str]:
        """Functions that must still be called before the turn may end."""
        called = {c.function for c in history}
        return [r.tool_name for r in self.of("required_before_exit") if r.tool_name not in called]

    def continues(self, call: Call, heartbeat: bool, failed: bool, history: list[Call]) -> bool:
        """Whether the turn gets another step after a call (`history` includes it)."""
        if failed:
            return True
        if self.of("exit_loop", call.function):
            return False
        if (self.of("continue_loop", call.function) or self.has_children(call.function)
                or self.required_left(history)):
            return True
        return heartbeat

    def has_children(self, function: str) -> bool:
        """Whether a rule names the functions that follow this one."""
        return bool(self.of("constrain_child_tools", function) or self.of("conditional", function))


def parse_rules(data: Any, functions: Iterable[str], max_chain: int,
                replies_end_turn: bool = False) -> list[ToolRule]:
    """A whole rule set from its JSON list, checked: each rule, then that no step of any turn
    is left without a function to call (replies_end_turn: under the reply architecture)."""
    names = list(functions)
    if not isinstance(data, list) or len(data) > MAX_RULES:
        raise ToolRuleError(f"tool rules must be a list of at most {MAX_RULES} rules.")
    rules = [parse_rule(item, names) for item in data]
    for rule in rules:
        going_on = [r for r in rules if r.tool_name == rule.tool_name and r.type in CONTINUING]
        if rule.type == "exit_loop" and going_on:
            raise ToolRuleError(f"tool rules exit_loop and {going_on[0].type} both name "
                                f"{rule.tool_name}: a call cannot both end and continue a turn.")
    check_reachable(RuleSolver(rules, names, replies_end_turn), max_chain)
    return rules


def check_reachable(solver: RuleSolver, max_chain: int) -> None:
    """Walk every turn the rules allow (each function's possible results: each case of a
    conditional rule, or anything else) and raise naming the rule that leaves a step with no
    function to call."""
    seen: set[tuple] = set()
    frontier: list[list[Call]] = [[]]
    while frontier:
        history = frontier.pop()
        allowed = solver.allowed(history, len(history), max_chain)
        if not allowed.functions and not _stopped_by_mapping(allowed):
            after = f"after {history[-1].function}" if history else "at the first step"
            rules = ", ".join(str(r) for r in allowed.narrowed_by)
            raise ToolRuleError(f"tool rules leave no function allowed {after} ({rules}).")
        if len(history) + 1 >= max_chain:
            continue
        for function in allowed.functions:
            for result in _results(solver, function):
                nxt = history + [Call(function, result)]
                key = _state(solver, nxt)
                if key not in seen and solver.continues(nxt[-1], True, False, nxt):
                    seen.add(key)
                    frontier.append(nxt)


def _stopped_by_mapping(allowed: Allowed) -> bool:
    """A conditional rule with require_output_mapping stops the turn on an unknown result:
    that is the rule working, not a rule set without a way out."""
    return bool(allowed.narrowed_by) and allowed.narrowed_by[-1].require_output_mapping


def _results(solver: RuleSolver, function: str) -> list[str]:
    cases = [v for r in solver.of("conditional", function) for v in r.child_output_mapping]
    return cases + ["\x00any other result"]


def _state(solver: RuleSolver, history: list[Call]) -> tuple:
    """What the rules can tell apart of a turn so far."""
    called = [c.function for c in history]
    counts = tuple(min(called.count(r.tool_name), r.max_count_limit)
                   for r in solver.of("max_count_per_step"))
    return (len(history), history[-1], counts, tuple(solver.required_left(history)))
