"""Synthetic worlds for the training episodes: a user with facts about their life, fictional
passages about made-up things, and chains of codes, all drawn fresh from Faker and a seeded
random generator. Nothing here comes from, or is shaped on, the benchmark data."""

import itertools
import random
from dataclasses import dataclass

from faker import Faker


@dataclass(frozen=True)
class Fact:
    """One thing that can be known: how the user says it, how it is asked, its answer, the
    line core memory keeps, the reply that gives it, and a short search query for it."""

    statement: str
    question: str
    answer: str
    note: str
    reply: str
    query: str


# (statement, question, note, reply, query) with {v} for the value; the value's kind
PERSONAL = [
    ("My dog is called {v}.", "What is my dog's name?", "Dog: {v}", "Your dog is called {v}.",
     "dog name", "first_name"),
    ("I have a cat named {v}.", "What's my cat called?", "Cat: {v}", "Your cat is {v}.",
     "cat name", "first_name"),
    ("I live in {v}.", "Where do I live?", "Lives in {v}", "You live in {v}.", "where I live",
     "city"),
    ("I work as a {v}.", "What do I do for work?", "Job: {v}", "You work as a {v}.", "my job",
     "job"),
    ("My sister's name is {v}.", "What is my sister's name?", "Sister: {v}",
     "Your sister is {v}.", "sister", "first_name"),
    ("My birthday is on {v}.", "When is my birthday?", "Birthday: {v}",
     "Your birthday is on {v}.", "birthday", "day"),
    ("My favourite food is {v}.", "What's my favourite food?", "Favourite food: {v}",
     "You love {v}.", "favourite food", "food"),
    ("I drive a {v}.", "What car do I drive?", "Car: {v}", "You drive a {v}.", "car", "color"),
    ("I work at {v}.", "Which company do I work at?", "Works at {v}", "You work at {v}.",
     "company where I work", "company"),
    ("My best friend is {v}.", "Who is my best friend?", "Best friend: {v}",
     "Your best friend is {v}.", "best friend", "name"),
    ("I play the {v}.", "Which instrument do I play?", "Plays the {v}", "You play the {v}.",
     "instrument", "instrument"),
]
FOODS = ["lasagne", "ramen", "paella", "dumplings", "tacos", "risotto", "falafel", "curry",
         "pancakes", "moussaka", "pho", "goulash", "sushi", "pierogi", "gnocchi"]
INSTRUMENTS = ["piano", "violin", "cello", "guitar", "flute", "drums", "trumpet", "ukulele",
               "harp", "clarinet", "saxophone", "accordion"]
# fictional passages: (passage, question, answer field); fields filled from the world
PASSAGES = [
    ("The {thing} of {place} was built in {year} by the engineer {person}.",
     "Who built the {thing} of {place}?", "person"),
    ("The {thing} of {place} was built in {year} by the engineer {person}.",
     "In which year was the {thing} of {place} built?", "year"),
    ("{company} was founded by {person} in the town of {place}, where it still makes {goods}.",
     "What does {company} make?", "goods"),
    ("{company} was founded by {person} in the town of {place}, where it still makes {goods}.",
     "Who founded {company}?", "person"),
    ("Every spring the village of {place} holds the {festival}, famous for its {goods}.",
     "Which village holds the {festival}?", "place"),
    ("The research ship {ship} sailed from {place} in {year} under captain {person}.",
     "Who was the captain of the research ship {ship}?", "person"),
    ("The research ship {ship} sailed from {place} in {year} under captain {person}.",
     "From which port did the research ship {ship} sail?", "place"),
]
THINGS = ["Old Bridge", "Clock Tower", "Lighthouse", "Observatory", "Canal Lock", "Town Hall",
          "Railway Station", "Windmill", "Library", "Aqueduct"]
GOODS = ["paper lanterns", "copper kettles", "wool blankets", "glass beads", "wooden toys",
         "clay pots", "rope", "candles", "bicycles", "pocket watches", "honey cakes"]
FESTIVALS = ["Lantern Fair", "Harvest Night", "Kite Day", "Salt Festival", "River Parade",
             "Bell Week", "Apple Feast"]


class World:
    """Fresh names, places, dates and codes, drawn from Faker and a seeded generator."""

    def __init__(self, seed: int):
        self.random = random.Random(seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)

    def value(self, kind: str) -> str:
        """A fresh value of a kind (a first name, a city, a job...)."""
        fake, pick = self.fake, self.random.choice
        values = {"first_name": fake.first_name, "city": fake.city, "name": fake.name,
                  "job": lambda: fake.job().split(",")[0].lower(),
                  "day": lambda: fake.date_object().strftime("%B %d").replace(" 0", " "),
                  "food": lambda: pick(FOODS), "instrument": lambda: pick(INSTRUMENTS),
                  "color": lambda: f"{fake.color_name().lower()} {fake.last_name()}",
                  "company": lambda: fake.company().replace(",", "")}
        return values[kind]()

    def personal_facts(self, count: int) -> list[Fact]:
        """Facts about the user, each of a different kind."""
        chosen = self.random.sample(PERSONAL, count)
        facts = []
        for statement, question, note, reply, query, kind in chosen:
            v = self.value(kind)
            facts.append(Fact(statement.format(v=v), question, v, note.format(v=v),
                              reply.format(v=v), query))
        return facts

    def passage_facts(self, count: int) -> list[tuple[str, Fact]]:
        """Fictional passages, each with one question it answers."""
        found = []
        for _ in range(count):
            passage, question, field = self.random.choice(PASSAGES)
            values = {"thing": self.random.choice(THINGS), "place": self.fake.city(),
                      "year": str(self.random.randint(1620, 1990)), "person": self.fake.name(),
                      "company": self.value("company"), "goods": self.random.choice(GOODS),
                      "festival": self.random.choice(FESTIVALS),
                      "ship": self.fake.last_name() + " " + self.random.choice(["Star", "Wind",
                                                                              "Gull", "Tide"])}
            answer = values[field]
            text = passage.format(**values)
            found.append((text, Fact(text, question.format(**values), answer, text,
                                     _passage_reply(answer, self.random), question.format(
                                         **values).rstrip("?"))))
        return found

    def code(self) -> str:
        """A fresh code word: two syllables and four digits (never a UUID)."""
        return f"{self.fake.word()}-{self.random.randint(1000, 9999)}"

    def chain(self, length: int) -> list[str]:
        """Codes where each points to the next: `length` lookups from the first."""
        return [self.code() for _ in range(length + 1)]


def _passage_reply(answer: str, rng: random.Random) -> str:
    """A short reply that gives an answer found in memory."""
    return rng.choice(["{a}.", "It was {a}.", "That's {a}.", "According to my notes, {a}.",
                       "{a}, as far as I know."]).format(a=answer)


def chain_passages(codes: list[str]) -> list[str]:
    """The passages of a chain: code i points to code i+1."""
    return [f"Locker {a} holds the key to locker {b}." for a, b in itertools.pairwise(codes)]
