"""The echo guard (llm/echo.py): free text that writes itself again ends before the repeat,
at the last sentence end held back before it, and nothing it shows is lost or reordered."""

from hypothesis import example, given, settings
from hypothesis import strategies as st

from memgpt_local.llm.echo import EchoGuard, ends_sentence, rest_of_text, shown_text


def _grams(tokens: list[int], span: int) -> list[tuple[int, ...]]:
    return [tuple(tokens[i:i + span]) for i in range(len(tokens) - span + 1)]


def _repeats_a_span(tokens: list[int], span: int) -> bool:
    grams = _grams(tokens, span)
    return len(set(grams)) < len(grams)


def _piece(token: int) -> str:
    """A test token's text: 0 ends a sentence, the others are their number and a space."""
    return ". " if token == 0 else f"{token} "


def _follow(guard: EchoGuard, tokens: list[int]) -> str:
    """Push tokens until the guard ends the output; return what it showed, its held-back
    text included where it did not loop."""
    shown = ""
    for token in tokens:
        shown += shown_text(guard, None, token, _piece(token))
        if guard.looped:
            return shown
    return shown + rest_of_text(guard, "")


def _repeats_before(tokens: list[int], index: int, length: int) -> bool:
    """Whether the `length` tokens ending at `index` occur earlier in the output."""
    gram = tokens[index - length + 1:index + 1]
    return len(gram) == length and any(
        tokens[end - length + 1:end + 1] == gram for end in range(length - 1, index))


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(st.integers(0, 3), max_size=80), span=st.integers(4, 10),
       hold_from=st.integers(1, 6))
@example(tokens=[1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8], span=8, hold_from=4)
@example(tokens=[0] * 30, span=6, hold_from=3)
@example(tokens=[1, 2, 3, 4, 0, 5, 2, 3, 4, 0], span=4, hold_from=1)  # 5 begins a sentence
def test_the_guard_shows_everything_up_to_the_first_repeat_and_nothing_of_it(
        tokens, span, hold_from):
    guard = EchoGuard(span, hold_from)
    shown = _follow(guard, tokens)
    kept = guard.tokens[:guard.shown]
    assert shown == "".join(_piece(t) for t in kept)  # in order, nothing lost or doubled
    assert not _repeats_a_span(kept, span)
    if not guard.looped:
        assert kept == tokens and not _repeats_a_span(tokens, span)
        return
    # it ended where a span first repeated, and dropped that repeat
    assert _repeats_a_span(guard.tokens, span)
    assert not _repeats_a_span(guard.tokens[:-1], span)
    assert guard.held >= span - (hold_from - 1)  # only its first tokens showed
    cut_short = range(guard.shown, len(guard.tokens) - span)  # dropped before the repeat
    assert all(_repeats_before(guard.tokens, i, hold_from) or i and guard.tokens[i - 1] == 0
               for i in cut_short)  # each repeats what came before, or begins a sentence
    assert not any(ends_sentence(_piece(guard.tokens[i])) for i in cut_short)


def test_a_short_repeat_is_held_back_only_until_it_breaks_off():
    guard = EchoGuard(span=8, hold_from=2)
    said = [shown_text(guard, None, t, f"{t} ") for t in [1, 2, 3, 4, 1, 2, 3]]
    assert said == ["1 ", "2 ", "3 ", "4 ", "1 ", "", ""]  # "1 2 3" again: "2 3" held
    assert shown_text(guard, None, 9, "9 ") == "2 3 9 "  # it broke off: let through
    guard = EchoGuard(span=8)  # the default: from the first token written before
    said = [shown_text(guard, None, t, f"{t} ") for t in [1, 2, 3, 1, 2, 4]]
    assert said == ["1 ", "2 ", "3 ", "", "", "1 2 4 "]


def test_a_repeated_paragraph_ends_the_text_before_it():
    paragraph = list(range(100, 120))
    guard = EchoGuard()
    shown = _follow(guard, [7] + paragraph + [8] + paragraph + [9])
    assert guard.looped  # none of the repeat shows
    assert shown == "".join(f"{t} " for t in [7] + paragraph + [8])


def test_a_loop_never_leaves_the_first_word_of_its_repeat_shown():
    # SmolLM2: "...your life.\n\nI" + "'m here to help..." again; "I" began the reply, and
    # " I'm here" was written mid-sentence: the repeat of 16 tokens starts after "I"
    i, i_mid, am, here, to, help, dot, lines = range(8)
    said = [i, am, 10, dot, i_mid, am, here, to, help, 11, 12, 13, dot, lines]
    again = [i, am, here, to, help, 11, 12, 13, dot, lines]
    pieces = ["I", " I", "'m", " here", " to", " help", ".", "\n\n"]
    guard, shown = EchoGuard(span=8), ""
    for token in said + again:
        shown += shown_text(guard, None, token, pieces[token] if token < 8 else f" w{token}")
        if guard.looped:
            break
    assert guard.held == 1 + 8  # "I" and the repeat ("'m here ... .")
    assert shown == "I'm w10. I'm here to help w11 w12 w13.\n\n"


def test_a_loop_whose_first_word_was_another_token_the_first_time_leaves_none_of_it():
    # "I'm so glad you reached out to me. I" + "'m so glad you reached out to me.": " I" is
    # new to the output (the reply began with "I"), but it begins a sentence and waits
    i, i_mid, am, so, glad, dot = range(6)
    pieces = ["I", " I", "'m", " so", " glad", "."]
    guard, shown = EchoGuard(span=4), ""
    for token in [i, am, so, glad, dot, i_mid, am, so, glad, dot]:
        shown += shown_text(guard, None, token, pieces[token])
        if guard.looped:
            break
    assert shown == "I'm so glad." and guard.held == 1 + 4


def test_a_loop_cut_short_keeps_what_it_held_up_to_a_sentence_end():
    guard = EchoGuard(span=6)
    tokens = [1, 2, 3, 4, 5, 6, 9, 0, 1, 2, 3, 4, 5, 6]  # "... 9 . " and then the repeat
    shown = _follow(guard, [1, 2, 3, 0, 9] + tokens)
    assert guard.looped and shown == "1 2 3 . 9 1 2 3 4 5 6 9 . "


class _Call:
    free_text = False


class _Reply:
    free_text = True


def test_calls_are_left_to_their_constraint_and_replies_are_guarded():
    looping = [1, 2, 3, 4, 5] * 10
    call_guard, reply_guard = EchoGuard(span=6), EchoGuard(span=6)
    assert all(shown_text(call_guard, _Call(), t, "x") == "x" for t in looping)
    for token in looping:
        shown_text(reply_guard, _Reply(), token, "x")
    assert reply_guard.looped and not call_guard.looped
    assert shown_text(None, None, 1, "x") == "x"  # no guard: everything shows
