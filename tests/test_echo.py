"""The echo guard (llm/echo.py): free text that writes itself again ends before the repeat,
and nothing it shows is lost or reordered."""

from hypothesis import example, given, settings
from hypothesis import strategies as st

from memgpt_local.llm.echo import EchoGuard, rest_of_text, shown_text


def _grams(tokens: list[int], span: int) -> list[tuple[int, ...]]:
    return [tuple(tokens[i:i + span]) for i in range(len(tokens) - span + 1)]


def _repeats_a_span(tokens: list[int], span: int) -> bool:
    grams = _grams(tokens, span)
    return len(set(grams)) < len(grams)


def _follow(guard: EchoGuard, tokens: list[int]) -> str:
    """Push tokens (each token's text is its number and a space) until the guard ends the
    output; return what it showed, its held-back text included where it did not loop."""
    shown = ""
    for token in tokens:
        piece = shown_text(guard, None, token, f"{token} ")
        if piece is None:
            break
        shown += piece
    return shown + rest_of_text(guard, "")


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(st.integers(0, 3), max_size=80), span=st.integers(4, 10),
       hold_from=st.integers(1, 6))
@example(tokens=[1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8], span=8, hold_from=4)
@example(tokens=[0] * 30, span=6, hold_from=3)
def test_the_guard_shows_everything_up_to_the_first_repeat_and_nothing_of_it(
        tokens, span, hold_from):
    guard = EchoGuard(span, hold_from)
    shown = _follow(guard, tokens)
    kept = guard.tokens[:guard.shown]
    assert shown == "".join(f"{t} " for t in kept)  # in order, nothing lost or doubled
    assert not _repeats_a_span(kept, span)
    if guard.looped:  # it ended where a span first repeated, and dropped that repeat
        assert _repeats_a_span(guard.tokens, span)
        assert not _repeats_a_span(guard.tokens[:-1], span)
        assert guard.held >= span - (hold_from - 1)  # only its first tokens showed
    else:
        assert kept == tokens and not _repeats_a_span(tokens, span)


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


class _Call:
    free_text = False


class _Reply:
    free_text = True


def test_calls_are_left_to_their_constraint_and_replies_are_guarded():
    looping = [1, 2, 3, 4, 5] * 10
    call_guard, reply_guard = EchoGuard(span=6), EchoGuard(span=6)
    assert all(shown_text(call_guard, _Call(), t, "x") == "x" for t in looping)
    assert None in [shown_text(reply_guard, _Reply(), t, "x") for t in looping]
    assert shown_text(None, None, 1, "x") == "x"  # no guard: everything shows
