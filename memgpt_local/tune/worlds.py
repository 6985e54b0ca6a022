"""Synthetic worlds for the training episodes: a user with facts about their life, fictional
passages about made-up things, and chains of codes, all drawn fresh from Faker and a seeded
random generator. Nothing here comes from, or is shaped on, the benchmark data."""

import itertools
import random
import re
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
# fictional articles, a few sentences each like an encyclopedia entry: (text, [(question,
# answer field)]); fields filled from the world, the answer somewhere inside the text
ARTICLES = [
    ("The {thing} of {place} is a {material} building on the bank of the river {river}. It was "
     "built in {year} by the engineer {person}. The tower is {height} metres tall and was "
     "restored in {year2} after a {disaster}. Today it belongs to {company}.",
     [("Who built the {thing} of {place}?", "person"),
      ("When was the {thing} of {place} built?", "year"),
      ("How tall is the {thing} of {place}?", "height"),
      ("On which river is the {thing} of {place}?", "river"),
      ("Who owns the {thing} of {place} today?", "company")]),
    ("{company} is a maker of {goods} based in {place}. It was founded in {year} by {person}, "
     "once {a_job}. The company employs {count} people, and its best-known product is the "
     "{product}. In {year2} it moved its workshop to {place2}.",
     [("What does {company} make?", "goods"), ("Who founded {company}?", "person"),
      ("When was {company} founded?", "year"),
      ("How many people work for {company}?", "count"),
      ("What is the best-known product of {company}?", "product"),
      ("Where did {company} move its workshop in {year2}?", "place2")]),
    ("The {ship} was a research ship launched at {place} in {year}. Under captain {person} she "
     "mapped the {sea} and found {island}. Her crew of {count} spent {months} months at sea on "
     "the first voyage. In {year2} the ship was sold to {company}.",
     [("Who was the captain of the {ship}?", "person"),
      ("Which sea did the {ship} map?", "sea"), ("What island did the {ship} find?", "island"),
      ("When was the {ship} launched?", "year"), ("Who bought the {ship}?", "company")]),
    ("{person} is a writer and musician from {place}. Born in {year}, {first} studied music in "
     "{place2} and later wrote a book called {title}. {first} is best known for the "
     "{festival}, held every spring in {place} since {year2}.",
     [("Where is {person} from?", "place"), ("What book did {person} write?", "title"),
      ("When was {person} born?", "year"), ("Where did {person} study music?", "place2"),
      ("What is {person} best known for?", "festival")]),
]
THINGS = ["Old Bridge", "Clock Tower", "Lighthouse", "Observatory", "Canal Lock", "Town Hall",
          "Railway Station", "Windmill", "Library", "Aqueduct"]
GOODS = ["paper lanterns", "copper kettles", "wool blankets", "glass beads", "wooden toys",
         "clay pots", "rope", "candles", "bicycles", "pocket watches", "honey cakes"]
FESTIVALS = ["Lantern Fair", "Harvest Night", "Kite Day", "Salt Festival", "River Parade",
             "Bell Week", "Apple Feast"]
MATERIALS = ["red brick", "granite", "sandstone", "timber", "limestone", "iron"]
DISASTERS = ["fire", "flood", "storm", "earthquake", "landslide"]
SEAS = ["Amber Sea", "Grey Gulf", "Northern Shelf", "Coral Basin", "Misty Sound", "Cold Strait"]
PRODUCTS = ["Model {n}", "{w} Mark {n}", "{w} {n}"]


class World:
    """Fresh names, places, dates and codes, drawn from Faker and a seeded generator."""

    def __init__(self, seed: int):
        self.random = random.Random(seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)

    def value(self, kind: str) -> str:
        """A fresh value of a kind (a first name, a city, a job...)."""
        fake, pick = self.fake, self.random.choice
        values = {"first_name": fake.first_name, "city": fake.city,
                  "name": lambda: f"{fake.first_name()} {fake.last_name()}",
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
        """Fictional articles, each with one question it answers (asked in one of several
        styles)."""
        found = []
        for _ in range(count):
            text, questions = self.random.choice(ARTICLES)
            values = self._article_values()
            question, field = self.random.choice(questions)
            asked = question.format(**values)
            found.append((text.format(**values), Fact(
                text.format(**values), styled(asked, self.random), values[field],
                text.format(**values), _passage_reply(values[field], text.format(**values),
                                                      self.random), self._query(asked))))
        return found

    def _article_values(self) -> dict[str, str]:
        """The fields of one article, drawn fresh."""
        fake, pick, number = self.fake, self.random.choice, self.random.randint
        person = self.value("name")
        return {"thing": pick(THINGS), "place": fake.city(), "place2": fake.city(),
                "year": str(number(1620, 1990)), "year2": str(number(1991, 2024)),
                "person": person, "first": person.split()[0], "company": self.value("company"),
                "goods": pick(GOODS), "festival": pick(FESTIVALS), "material": pick(MATERIALS),
                "river": fake.last_name(), "height": str(number(12, 140)),
                "disaster": pick(DISASTERS), "a_job": _with_article(self.value("job")),
                "count": str(number(12, 900)), "months": str(number(3, 30)), "sea": pick(SEAS),
                "island": f"{fake.last_name()} Island", "title": _title(fake),
                "product": pick(PRODUCTS).format(n=number(2, 90), w=fake.last_name()),
                "ship": fake.last_name() + " " + pick(["Star", "Wind", "Gull", "Tide"])}

    def _query(self, question: str) -> str:
        """A search query for a question: the question itself, or its words lower-cased."""
        return question.rstrip("?") if self.random.random() < 0.6 else \
            question.rstrip("?").lower()

    def code(self) -> str:
        """A fresh code word: two syllables and four digits (never a UUID)."""
        return f"{self.fake.word()}-{self.random.randint(1000, 9999)}"

    def chain(self, length: int) -> list[str]:
        """Codes where each points to the next: `length` lookups from the first."""
        return [self.code() for _ in range(length + 1)]


def _passage_reply(answer: str, text: str, rng: random.Random) -> str:
    """A short reply that gives an answer found in memory: the answer alone, in a phrase, or
    the sentence of the passage that holds it."""
    sentence = next((s for s in re.split(r"(?<=\.) ", text) if answer in s), f"{answer}.")
    return rng.choice(["{a}.", "It's {a}.", "According to my notes, {a}.", "{a}, as far as I "
                       "know.", "{s}", "I found it: {s}", "{s}"]).format(a=answer, s=sentence)


def styled(question: str, rng: random.Random) -> str:
    """A question as people type it: as written, lower-case without the mark, or asked
    politely."""
    plain = question[0].lower() + question[1:]
    return rng.choice([question, question, plain.rstrip("?"), plain.rstrip("?").lower(),
                       f"Do you know {plain}", f"Can you tell me {plain}"])


def _with_article(noun: str) -> str:
    """A noun with a or an before it."""
    return ("an " if noun[0].lower() in "aeiou" else "a ") + noun


def _title(fake: Faker) -> str:
    """A made-up book title."""
    return "The " + " ".join(w.capitalize() for w in fake.words(2))


def chain_passages(codes: list[str]) -> list[str]:
    """The passages of a chain: code i points to code i+1."""
    return [f"Locker {a} holds the key to locker {b}." for a, b in itertools.pairwise(codes)]
