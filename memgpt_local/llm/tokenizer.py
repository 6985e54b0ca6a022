"""A GGUF model's own tokenizer, chat template and call constraint, apart from running it.

Both runtimes build on it: the in-process one (runtime.py) over the fully loaded model, the
remote one (remote/runtime.py) over the file's vocabulary alone, so that prompts, token counts and
constraints are computed here the same way whichever process runs the model.
"""

from pathlib import Path
from typing import Any

from ..errors import MemgptLocalError
from .adapters import adapter_key
from .base import PromptTokens
from .chat_template import ChatTemplate
from .decoding import COPY_SPAN, FunctionCallConstraint, NoCopyProcessor, token_pieces
from .kvcache import file_key
from .models import ModelSpec
from .reply_constraint import ReplyOrCallConstraint
from .tool_formats import ToolFormat, detect


class ModelTokenizer:
    """Tokenizing, chat templating and constraint building for one GGUF model (`llm`: a
    llama_cpp.Llama, loaded whole or its vocabulary only)."""

    n_ctx: int  # the window, set by the runtime built on it

    def __init__(self, spec: ModelSpec, llm: Any, path: Path, grammar_dir: Path) -> None:
        self.spec = spec
        self.llm = llm
        self.path = path
        self.grammar_dir = grammar_dir
        self.metadata: dict[str, str] = dict(llm.metadata)
        self.template = self._load_template()
        self.pieces = token_pieces(llm)  # the constraints' token texts, for this model

    def _load_template(self) -> ChatTemplate:
        source = self.spec.template_source(self.metadata)
        if not source:
            raise MemgptLocalError(
                f"{self.path.name} has no chat template. Set chat_template for "
                f"'{self.spec.alias}' in models.toml to a file in prompt_templates/chat/.")
        return ChatTemplate(source, self.token_text(self.llm.token_bos()),
                            self.token_text(self.llm.token_eos()))

    @property
    def tool_format(self) -> ToolFormat:
        """The tool-call format the chat template defines (ours where it defines none)."""
        return detect(self.template.source)

    def constraint(self, schema: dict, tool_format: ToolFormat | None = None
                   ) -> FunctionCallConstraint:
        """The function-call constraint for a schema on this model (its index built once), in
        a tool format (default: ours)."""
        model = f"{file_key(self.path)}:{adapter_key(self.spec)}"
        return FunctionCallConstraint(self.llm, model, schema, self.grammar_dir,
                                      self.pieces, tool_format=tool_format)

    def reply_constraint(self, schema: dict | None, tool_format: ToolFormat | None = None
                         ) -> ReplyOrCallConstraint:
        """A plain reply, or (schema given) a call of the schema, from the first token on."""
        call = self.constraint(schema, tool_format).processor if schema is not None else None
        return ReplyOrCallConstraint(call, True, self.pieces)

    def token_text(self, token: int) -> str:
        """The text of one token, special tokens rendered as their text."""
        if token < 0:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def control_tokens(self) -> dict[int, str]:
        """The vocabulary's control tokens (those only the chat template may put in a
        prompt), by id, with their text."""
        from llama_cpp import llama_vocab_is_control

        vocab = self.llm._model.vocab
        return {token: self.token_text(token) for token in range(self.llm.n_vocab())
                if llama_vocab_is_control(vocab, token)}

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        """Tokenize text with the model's tokenizer; special=False keeps control tokens inert."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def count_tokens(self, text: str) -> int:
        """Number of tokens in a plain text, by the model's own tokenizer."""
        return len(self.tokenize(text))

    def detokenize(self, tokens: list[int]) -> str:
        """Text of a token sequence."""
        return self.llm.detokenize(tokens).decode("utf-8", errors="replace")

    def chat_tokens(self, messages: list[dict], add_generation_prompt: bool = True,
                    tools: list[dict] | None = None) -> PromptTokens:
        """Render chat messages (and tools, as the template lists them) and tokenize them;
        message text never yields control tokens."""
        tokens: list[int] = []
        ends, counts, markup = [0] * len(messages), [0] * len(messages), 0
        for segment in self.template.segments(messages, add_generation_prompt, tools):
            piece = self.tokenize(segment.text, special=segment.is_template)
            tokens += piece
            if segment.message_index is None:
                markup += len(piece)  # counted with the message whose text follows it
                continue
            ends[segment.message_index] = len(tokens)
            counts[segment.message_index] += markup + len(piece)
            markup = 0
        owned = [end for end in ends if end]
        in_order = owned == sorted(owned)
        for index in range(1, len(ends)):  # a message with no text of its own (a bare call)
            ends[index] = max(ends[index], ends[index - 1])
        bos = self.llm.token_bos()
        if self.llm._model.add_bos_token() and bos >= 0 and tokens[:1] != [bos]:
            tokens.insert(0, bos)
            ends = [e + 1 for e in ends]
            counts[:1] = [c + 1 for c in counts[:1]]
        return PromptTokens(tokens, ends, counts, in_order)

    def is_end_of_generation(self, token: int) -> bool:
        """Whether a token ends a turn (EOS, end-of-turn and the like)."""
        from llama_cpp import llama_vocab_is_eog

        return bool(llama_vocab_is_eog(self.llm._model.vocab, token))

    def no_copy(self, texts: list[str] | None) -> NoCopyProcessor | None:
        """A processor that keeps the output from copying COPY_SPAN tokens of these texts in a
        row (None without texts)."""
        if not texts:
            return None
        return NoCopyProcessor([self.tokenize(t) for t in texts] +
                               [self.tokenize(" " + t) for t in texts], COPY_SPAN)
