"""Why a turn ended before the agent ended it itself (Letta's StopReason, for our loop)."""

from enum import StrEnum


class StopReason(StrEnum):
    """The loop's reasons to end a turn the model had not finished."""

    STEP_CAP = "step_cap"  # max_chain steps ran
    FAILED_CALLS = "failed_calls"  # max_failures calls in a row failed
    NO_FUNCTION_ALLOWED = "no_function_allowed"  # the tool rules allow nothing more
