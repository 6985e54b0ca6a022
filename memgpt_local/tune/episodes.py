"""Training episodes: a world, an agent set up in it (core memory, recall, archival) and the
user's turns, each with the policy that plays it. Played through the real engine and agent, so
every recorded prompt is one the agent really builds."""

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..engine import Engine
from ..memory.messages import Message
from .policies import AnswerPolicy, ChainPolicy, SavePolicy, SayPolicy, SummaryPolicy
from .recorder import Policy, Recorder
from .worlds import World, chain_passages, styled

SMALL_TALK = [("Hi! How are you today?", ["I'm doing well, thanks for asking! How about you?",
                                          "Pretty good! What's on your mind today?"]),
              ("I had a long day at work.", ["Sorry to hear that. Want to tell me about it?",
                                             "That sounds tiring. Take it easy tonight."]),
              ("Thanks, that helps.", ["Happy to help!", "Any time."]),
              ("Tell me something cheerful.", ["Every day is a new start - and I'm glad "
                                               "you're here.", "Here's one: you made it "
                                               "through today!"]),
              ("The weather is lovely here.", ["Nice! Enjoy the sunshine.",
                                               "Lovely - a good day for a walk."])]
GREETINGS = ["Hello! I'm glad you're here. What's your name?",
             "Hi there! Nice to meet you - what should I call you?",
             "Hey! Welcome. What's your name?"]
TRAINING_SETTINGS = {"architecture": "reply"}  # a new agent's other defaults are kept


@dataclass
class Turn:
    """One user message and the policy that answers it (its skill names it)."""

    text: str
    policy: Policy
    skill: str


@dataclass
class Episode:
    """An agent's starting memory and the turns played with it."""

    human: str
    turns: list[Turn]
    passages: list[str] = field(default_factory=list)
    history: list[Message] = field(default_factory=list)
    summarize: Policy | None = None
    n_ctx: int = 2048


def companion(world: World, rng: random.Random) -> Episode:
    """Facts in core memory and in an earlier conversation; a new one stated; questions on
    each, and on one nobody told."""
    core, earlier, stated, untold = _split(world.personal_facts(6), rng)
    history = _conversation([earlier.statement], rng)
    turns = [_small_talk(rng, 0), Turn(stated.statement, SavePolicy(stated, 1), "save_fact")]
    asked = [(core, "core_answer"), (earlier, "recall_answer"), (stated, "core_answer")]
    rng.shuffle(asked)
    for index, (fact, skill) in enumerate(asked):
        turns.append(Turn(styled(fact.question, rng), AnswerPolicy(
            fact, "conversation_search", fact.query, index), skill))
    if rng.random() < UNKNOWN_SHARE:
        turns.insert(rng.randint(2, len(turns)), Turn(styled(untold.question, rng), AnswerPolicy(
            None, "conversation_search", untold.query, 2), "unknown"))
    return Episode(core.note, turns, history=history,
                   summarize=SummaryPolicy([core, earlier, stated]))


def library(world: World, rng: random.Random) -> Episode:
    """Fictional passages in archival memory among distractors; questions on some, and on one
    no passage answers."""
    found = world.passage_facts(rng.randint(6, 14))
    asked = found[:rng.randint(1, 3)]
    turns = [Turn(fact.question, AnswerPolicy(fact, "archival_memory_search", fact.query, i),
                  "archival_answer") for i, (_, fact) in enumerate(asked)]
    if rng.random() < UNKNOWN_SHARE:
        missing = world.passage_facts(1)[0][1]
        turns.insert(rng.randint(0, len(turns)), Turn(missing.question, AnswerPolicy(
            None, "archival_memory_search", missing.query, 1), "unknown"))
    return Episode(world.personal_facts(1)[0].note, turns, [text for text, _ in found])


def lockers(world: World, rng: random.Random) -> Episode:
    """A chain of lockers (1 or 2 lookups: with the check of the last locker, the 3 searches
    a step may make) among other chains and passages."""
    codes = world.chain(rng.randint(1, 2))
    passages = chain_passages(codes) + [p for _ in range(3) for p in chain_passages(
        world.chain(rng.randint(1, 3)))] + [t for t, _ in world.passage_facts(4)]
    rng.shuffle(passages)
    question = rng.choice(["Start at locker {c}: which locker does the chain of keys end at?",
                           "Follow the keys from locker {c}. What is the last locker?"])
    turn = Turn(question.format(c=codes[0]), ChainPolicy(codes[0]), "chain")
    return Episode(world.personal_facts(1)[0].note, [turn], passages)


def long_talk(world: World, rng: random.Random) -> Episode:
    """Many facts told in a small window: the queue fills, a summary is asked for, and an
    early fact is asked about after it left the window."""
    facts = world.personal_facts(8)
    turns = []
    for index, fact in enumerate(facts[:5]):
        turns.append(Turn(fact.statement, SavePolicy(fact, index), "save_fact"))
        turns.append(_small_talk(rng, index))
    early = facts[0]
    turns.append(Turn(early.question, AnswerPolicy(early, "conversation_search", early.query),
                      "recall_answer"))
    return Episode("", turns, summarize=SummaryPolicy(facts), n_ctx=1536)


EPISODES: dict[str, Callable[[World, random.Random], Episode]] = {
    "companion": companion, "library": library, "lockers": lockers, "long_talk": long_talk}
MIX = {"companion": 3, "library": 5, "lockers": 1, "long_talk": 1}  # episodes drawn per 10
UNKNOWN_SHARE = 0.3  # of companion and library episodes that also ask what nobody told


def play(engine: Engine, recorder: Recorder, episode: Episode, name: str) -> None:
    """Set up an agent for the episode and play its turns through the agent's own loop."""
    if engine.agent_exists(name):
        engine.delete_agent(name)
    engine.create_agent(name, n_ctx=episode.n_ctx, human=episode.human or None,
                        settings=TRAINING_SETTINGS)
    if episode.passages:
        archival = engine.archival_storage(name, progress=False)
        try:
            archival.insert(episode.passages, source="tune")
        finally:
            archival.close()
    if episode.history:
        engine.recall_storage(name).bulk_import(episode.history)
    recorder.summarize = episode.summarize or SummaryPolicy([])
    agent = engine.open_agent(name)
    try:
        if not episode.history:  # a new user: the agent greets first, as `chat` starts
            recorder.policy = SayPolicy(GREETINGS, len(episode.turns[0].text))
            recorder.skill = "greeting"
            agent.first_login()
        for turn in episode.turns:
            recorder.policy, recorder.skill = turn.policy, turn.skill
            agent.send(turn.text)
    finally:
        engine.close_agent(agent)


def _split(facts: list, rng: random.Random) -> tuple:
    """Four facts for the companion: in core, told earlier, stated now, never told."""
    rng.shuffle(facts)
    return facts[0], facts[1], facts[2], facts[3]


def _small_talk(rng: random.Random, turn: int) -> Turn:
    text, replies = rng.choice(SMALL_TALK)
    return Turn(text, SayPolicy(replies, turn), "small_talk")


def _conversation(statements: list[str], rng: random.Random) -> list[Message]:
    """An earlier conversation, days ago, in which the user said these things."""
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=rng.randint(0, 300))
    messages = []
    for index, statement in enumerate(statements):
        when = start + timedelta(minutes=3 * index)
        messages.append(Message("user", statement, created_at=when))
        messages.append(Message("assistant", rng.choice(["Good to know!", "Noted.", "Nice!"]),
                                created_at=when + timedelta(minutes=1)))
    return messages

