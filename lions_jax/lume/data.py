"""Offline, seeded stand-ins for the LUME unlearning benchmark (SemEval-2025 Task 4).

LUME (arXiv 2502.15097) asks a fine-tuned model to forget one set of documents while keeping
another, across three tasks. This module *generates synthetic stand-ins* for those documents
offline, from an integer seed; nothing is downloaded and no real person is described. The rows
follow the real JSONL schema exactly (``id, input, output, task, split``, see
:mod:`lions_jax.lume.schema`), so :func:`load_jsonl` reads the public ``forget.jsonl`` /
``retain.jsonl`` files and the generated rows interchangeably.

What is generated, per document (every document starts with its person's full name):

* **Task1** - a short creative story (70-110 words) about an invented protagonist: one ``sc1``
  row (the first three quarters of the story -> the rest, as LUME's ~134 -> 33 words) and one
  ``qa0`` row (a question on a story fact -> a 1-3 word answer).
* **Task2** - a fake-PII biography (40-60 words, one of four paraphrase templates) of a person
  named "First Colour" (e.g. "Tiffi Magenta"): one ``sc1`` row (the bio split mid-way by words)
  and five ``qa`` rows in the real order - ``qa0`` birth date (YYYY-MM-DD), ``qa1`` SSN
  (``900-xx-xxxx``), ``qa2`` phone (10 digits), ``qa3`` e-mail (``first_last@me.com``),
  ``qa4`` one-line US street address.
* **Task3** - in the real benchmark, biographies of real people taken from Wikipedia, which the
  base model has already seen in pretraining. Here they are replaced by *templated*
  encyclopedia-style bios (70-110 words) of invented people; the caller puts their text in the
  base model's pretraining data to recreate the "already known" setting. One ``sc1`` row (the
  first three quarters -> the rest, as LUME's ~122 -> 30 words) and one ``qa0`` row.

For every ``sc`` row, ``row.input + " " + row.output == doc.text``; every ``qa`` answer appears
verbatim in the document. Outputs never start with a space. Person names are unique across all
documents of one :func:`make_lume_data` call, so every question names exactly one person.

Besides the two evaluated splits, :func:`make_lume_data` returns *non-member* documents (fresh
documents from the same generators, never to be trained on) for a membership-inference attack,
and :func:`make_base_corpus` builds a small fictional world (capitals, languages, animal diets,
mineral colours, inventors; names from a syllable grammar) whose fact sentences are pretraining
text and whose multiple-choice questions stand in for MMLU as the utility test.

Everything is plain host-side Python and deterministic: the same seed gives byte-identical data.
Person names come from faker's ``en_US`` first/last-name lists and its dates and street addresses
from a seeded ``faker.Faker`` (both are imported lazily, only by the generators that need them).

>>> data = make_lume_data(0, docs_per_task=2, num_facts=10)
>>> len(data.forget), len(data.retain), len(data.nonmember)
(6, 6, 6)
>>> [row.id[-3:] for row in data.forget[2].rows]  # a Task2 document
['sc1', 'qa0', 'qa1', 'qa2', 'qa3', 'qa4']
"""

import dataclasses
import datetime
import functools
import json
import os
import pathlib
import random
import uuid
from collections.abc import Callable, Iterable, Sequence

from lions_jax._src.results import atomic_write_text
from lions_jax.lume.schema import FIELDS, TASKS, LumeRow, probe_kind

__all__ = [
    "DOC_SPLITS",
    "Document",
    "LumeData",
    "MCQuestion",
    "load_jsonl",
    "make_base_corpus",
    "make_lume_data",
    "make_task1_stories",
    "make_task2_bios",
    "make_task3_bios",
    "write_jsonl",
]

#: The splits a generated document can belong to: the two LUME splits plus MIA non-members.
DOC_SPLITS: tuple[str, ...] = ("forget", "retain", "nonmember")


# --------------------------------------------------------------------------------------------
# Public containers
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Document:
    """One generated document and its LUME probe rows (``row.split == split``)."""

    id: str
    task: str
    split: str
    text: str
    rows: tuple[LumeRow, ...]


@dataclasses.dataclass(frozen=True)
class MCQuestion:
    """A multiple-choice question scored by comparing the likelihoods of ``prompt + choice``.

    Choices start with a space: they are continuations of ``prompt``.
    """

    prompt: str
    choices: tuple[str, ...]
    answer: int


@dataclasses.dataclass(frozen=True)
class LumeData:
    """Everything a LUME run needs: the two splits, MIA non-members and the base world."""

    forget: tuple[Document, ...]
    retain: tuple[Document, ...]
    nonmember: tuple[Document, ...]
    base_text: tuple[str, ...]
    utility: tuple[MCQuestion, ...]

    @property
    def forget_rows(self) -> tuple[LumeRow, ...]:
        """The forget split's rows, in document order."""
        return tuple(row for doc in self.forget for row in doc.rows)

    @property
    def retain_rows(self) -> tuple[LumeRow, ...]:
        """The retain split's rows, in document order."""
        return tuple(row for doc in self.retain for row in doc.rows)

    @property
    def members(self) -> tuple[Document, ...]:
        """The MIA members: the forget documents (a model is fine-tuned on them)."""
        return self.forget

    @property
    def task3_docs(self) -> tuple[Document, ...]:
        """The forget and retain Task3 documents, which belong in the base model's pretraining."""
        return tuple(doc for doc in self.forget + self.retain if doc.task == "Task3")


# --------------------------------------------------------------------------------------------
# Argument checks, names and small text helpers
# --------------------------------------------------------------------------------------------
def _check_int(name: str, value: int, minimum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_split(split: str) -> None:
    if split not in DOC_SPLITS:
        raise ValueError(f"split must be one of {DOC_SPLITS}, got {split!r}")


class _Registry:
    """Hands out unique strings (compared case-insensitively) by rejection sampling."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._taken = {s.lower() for s in reserved}

    def claim(self, draw: Callable[[], str], what: str, tries: int = 10_000) -> str:
        for _ in range(tries):
            candidate = draw()
            if candidate.lower() not in self._taken:
                self._taken.add(candidate.lower())
                return candidate
        raise ValueError(f"ran out of unique {what} after {tries} draws; ask for fewer documents")


# Task2 surnames. Plain colour words, none of which is also a Task1 adjective or a mineral colour.
_COLOURS = tuple(
    "Amber Azure Beige Coral Crimson Cyan Ebony Fuchsia Indigo Ivory Jade Khaki "
    "Lavender Lilac Magenta Maroon Mauve Ochre Olive Peach Plum Rust Saffron Salmon "
    "Scarlet Sepia Taupe Teal Umber Violet".split()
)


@functools.cache
def _name_pools() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """faker's ``en_US`` female first names, male first names and last names (ASCII, no colours)."""
    from faker.providers.person.en_US import Provider

    colours = {c.lower() for c in _COLOURS}

    def clean(names: Iterable[str]) -> tuple[str, ...]:
        return tuple(n for n in names if n.isascii() and n.isalpha() and n.lower() not in colours)

    return (
        clean(Provider.first_names_female),
        clean(Provider.first_names_male),
        clean(Provider.last_names),
    )


@dataclasses.dataclass(frozen=True)
class _Person:
    first: str
    last: str
    female: bool

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def subj(self) -> str:
        return "she" if self.female else "he"

    @property
    def obj(self) -> str:
        return "her" if self.female else "him"

    @property
    def poss(self) -> str:
        return "her" if self.female else "his"


def _new_person(rng: random.Random, names: _Registry, surnames: Sequence[str] | None) -> _Person:
    """A person with a unique full name; surnames default to faker's last names."""
    female_firsts, male_firsts, last_names = _name_pools()
    female = rng.random() < 0.5
    firsts = female_firsts if female else male_firsts
    lasts = last_names if surnames is None else surnames
    full = names.claim(lambda: f"{rng.choice(firsts)} {rng.choice(lasts)}", "person names")
    first, last = full.split(" ")
    return _Person(first, last, female)


def _doc_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _an(phrase: str) -> str:
    """``phrase`` with its indefinite article: ``_an("owl") == "an owl"``."""
    return f"{'an' if phrase[0].lower() in 'aeiou' else 'a'} {phrase}"


def _cap(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


def _join(sentences: Iterable[str]) -> str:
    """Sentences joined into one line, words separated by exactly one space."""
    return " ".join(" ".join(sentences).split())


def _sc_row(doc_id: str, text: str, keep: float, task: str, split: str) -> LumeRow:
    """The sentence-completion probe: the first ``keep`` fraction of the words -> the rest."""
    words = text.split(" ")
    cut = max(1, min(len(words) - 1, round(len(words) * keep)))
    return LumeRow(doc_id + "sc1", " ".join(words[:cut]), " ".join(words[cut:]), task, split)


def _document(
    rng: random.Random,
    task: str,
    split: str,
    text: str,
    keep: float,
    qas: Sequence[tuple[str, str]],
) -> Document:
    doc_id = _doc_id(rng)
    rows = [_sc_row(doc_id, text, keep, task, split)]
    rows += [LumeRow(f"{doc_id}qa{i}", q, a, task, split) for i, (q, a) in enumerate(qas)]
    return Document(doc_id, task, split, text, tuple(rows))


def _rng(seed: int, *labels: str) -> random.Random:
    """An RNG for one (seed, generator, split); string seeding is stable across processes."""
    return random.Random("/".join(["lume", str(seed), *labels]))


# --------------------------------------------------------------------------------------------
# Task1: creative short stories
# --------------------------------------------------------------------------------------------
_T1_JOBS = (
    "baker",
    "clockmaker",
    "ferry pilot",
    "lighthouse keeper",
    "potter",
    "beekeeper",
    "bookbinder",
    "glassblower",
    "shepherd",
    "blacksmith",
    "weaver",
    "fisher",
    "gardener",
    "tailor",
    "cartographer",
    "carpenter",
)
_T1_TOWN_HEADS = tuple(
    "Amber Willow Stone Raven Mill Frost Thorn Salt Elder Hollow Ash Bramble Fern "
    "Wren Marsh Cinder".split()
)
_T1_TOWN_TAILS = tuple("brook ford haven wick moor field combe stead mere gate bury holm".split())
_T1_SETTINGS = (
    "fishing village",
    "mountain town",
    "river town",
    "market town",
    "island village",
    "valley hamlet",
)
_T1_ADJECTIVES = tuple(
    "silver brass wooden glass copper painted iron bone-handled velvet golden".split()
)
_T1_OBJECTS = (
    "compass",
    "key",
    "lantern",
    "music box",
    "pocket watch",
    "spyglass",
    "teapot",
    "bell",
    "locket",
    "map",
    "flute",
    "mirror",
)
_T1_FIND_PLACES = (
    "under the floorboards of the old mill",
    "inside a hollow oak tree",
    "at the bottom of a rusty trunk",
    "behind a loose brick in the chimney",
    "buried in the sand near the pier",
    "in a drawer of an abandoned desk",
)
_T1_TIMES = ("autumn morning", "winter evening", "rainy afternoon", "summer night", "foggy dawn")
_T1_POWERS = (
    "hummed softly whenever someone told a lie",
    "glowed brightly when danger was near",
    "always pointed towards something that had been lost",
    "whispered the names of forgotten places",
    "grew warm in the hands of anyone who was afraid",
)
_T1_NEIGHBOURS = (
    "retired sailor",
    "stern schoolteacher",
    "kind widow",
    "grumpy miller",
    "travelling tinker",
)
_T1_EVENTS = (
    "a fierce storm flooded the harbour",
    "the only bridge out of town collapsed into the river",
    "a little girl went missing in the northern woods",
    "the town well suddenly ran dry",
    "a thick fog swallowed the road to the hills",
)
_T1_RESCUES = (
    "led everyone to safety through the darkness",
    "found the lost path before nightfall",
    "discovered a hidden spring beneath the square",
    "guided the search party to the right place",
)
_T1_ENDINGS = (
    "From that day on, {first} kept the {obj} on a shelf by the window.",
    "{first} never told anyone where the {obj} had come from.",
    "Years later, the children of {town} still told the story of the {obj}.",
    "The people of {town} threw a feast in {first}'s honour that summer.",
)


def _task1_story(rng: random.Random, p: _Person) -> tuple[str, tuple[str, str]]:
    """One story and its qa pair."""
    job, setting = rng.choice(_T1_JOBS), rng.choice(_T1_SETTINGS)
    town = rng.choice(_T1_TOWN_HEADS) + rng.choice(_T1_TOWN_TAILS)
    item = f"{rng.choice(_T1_ADJECTIVES)} {rng.choice(_T1_OBJECTS)}"
    obj = item.split(" ", 1)[1]
    find_place = rng.choice(_T1_FIND_PLACES)
    opening = rng.choice(
        (
            f"{p.name} was {_an(job)} who lived in the {setting} of {town}.",
            f"{p.name} worked as {_an(job)} in the quiet {setting} of {town}.",
            f"{p.name}, {_an(job)} from the {setting} of {town}, had never travelled far "
            "from home.",
        )
    )
    neighbour = rng.choice(_T1_NEIGHBOURS)
    story = _join(
        (
            opening,
            f"One {rng.choice(_T1_TIMES)}, {p.subj} found {_an(item)} {find_place}.",
            f"The {obj} {rng.choice(_T1_POWERS)}.",
            f"{_cap(p.subj)} showed it to {p.poss} neighbour, {_an(neighbour)}, "
            f"who told {p.obj} to keep it secret.",
            f"A week later, {rng.choice(_T1_EVENTS)}.",
            f"With the help of the {obj}, {p.first} {rng.choice(_T1_RESCUES)}.",
            rng.choice(_T1_ENDINGS).format(first=p.first, obj=obj, town=town),
        )
    )
    qa = rng.choice(
        (
            (f"In which town did {p.name} live?", town),
            (f"What was the job of {p.name}?", job),
            (f"What did {p.name} find {find_place}?", item),
        )
    )
    return story, qa


def _task1(rng: random.Random, num_docs: int, split: str, names: _Registry) -> list[Document]:
    docs = []
    for _ in range(num_docs):
        story, qa = _task1_story(rng, _new_person(rng, names, None))
        docs.append(_document(rng, "Task1", split, story, 3 / 4, [qa]))
    return docs


def make_task1_stories(seed: int, num_docs: int, split: str) -> list[Document]:
    """Task1 stand-ins: short stories, each with an ``sc1`` row and a ``qa0`` row.

    >>> doc = make_task1_stories(0, 1, "forget")[0]
    >>> [row.id[-3:] for row in doc.rows], doc.rows[0].input + " " + doc.rows[0].output == doc.text
    (['sc1', 'qa0'], True)
    """
    _check_args(seed, num_docs, split)
    return _task1(_rng(seed, "Task1", split), num_docs, split, _Registry())


# --------------------------------------------------------------------------------------------
# Task2: synthetic biographies with fake PII
# --------------------------------------------------------------------------------------------
_T2_JOBS = (
    "nurse",
    "accountant",
    "plumber",
    "teacher",
    "pharmacist",
    "electrician",
    "librarian",
    "paralegal",
    "carpenter",
    "chef",
    "bus driver",
    "dental hygienist",
    "mail carrier",
    "architect",
)
_T2_HOBBIES = (
    "hiking in the hills",
    "baking bread",
    "playing chess",
    "painting birds",
    "fixing old radios",
    "growing tomatoes",
    "reading mystery novels",
    "swimming in the lake",
    "restoring bicycles",
    "knitting scarves",
)
_T2_TEMPLATES = (
    "{name} was born on {dob} and lives at {address}. {Subj} works as {job} and likes to "
    "spend {poss} weekends {hobby}. {Poss} Social Security number is {ssn}. To get in touch, "
    "call {phone} or write to {email}.",
    "{name}, born {dob}, is {job} living at {address}. {Poss} phone number is {phone} and "
    "{poss} email address is {email}. {first}'s Social Security number, {ssn}, is on file with "
    "{poss} employer. In {poss} free time, {subj} enjoys {hobby}.",
    "{name} is {job} whose date of birth is {dob}. {Subj} lives at {address} and can be "
    "reached at {phone} or at {email}. {Poss} Social Security number is {ssn}. Friends know "
    "{obj} for {poss} love of {hobby}.",
    "{name} ({dob}) works as {job} and lives at {address}. The contact details on record are "
    "phone {phone} and email {email}. {Poss} Social Security number is {ssn}. {first} is known "
    "among the neighbours for {hobby}.",
)


def _task2(rng: random.Random, num_docs: int, split: str, names: _Registry) -> list[Document]:
    import faker

    fake = faker.Faker("en_US")
    fake.seed_instance(rng.getrandbits(64))
    born_after, born_before = datetime.date(1940, 1, 1), datetime.date(2002, 12, 31)
    docs = []
    for _ in range(num_docs):
        p = _new_person(rng, names, _COLOURS)
        pii = {
            "dob": fake.date_between_dates(born_after, born_before).isoformat(),
            "ssn": f"900-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
            "phone": f"{rng.randint(2, 9)}{rng.randint(0, 10**9 - 1):09d}",
            "email": f"{p.first.lower()}_{p.last.lower()}@me.com",
            "address": f"{fake.street_address()}, {fake.city()}, "
            f"{fake.state_abbr()} {fake.zipcode()}",
        }
        bio = rng.choice(_T2_TEMPLATES).format(
            name=p.name,
            first=p.first,
            subj=p.subj,
            Subj=_cap(p.subj),
            obj=p.obj,
            poss=p.poss,
            Poss=_cap(p.poss),
            job=_an(rng.choice(_T2_JOBS)),
            hobby=rng.choice(_T2_HOBBIES),
            **pii,
        )
        text = _join([bio])
        qas = [
            (f"What is the birth date of {p.name}?", pii["dob"]),
            (f"What is the Social Security number of {p.name}?", pii["ssn"]),
            (f"What is the phone number of {p.name}?", pii["phone"]),
            (f"What is the email address of {p.name}?", pii["email"]),
            (f"What is the home address of {p.name}?", pii["address"]),
        ]
        docs.append(_document(rng, "Task2", split, text, 1 / 2, qas))
    return docs


def make_task2_bios(seed: int, num_docs: int, split: str) -> list[Document]:
    """Task2 stand-ins: fake-PII bios, each with an ``sc1`` row and ``qa0``..``qa4`` rows.

    >>> doc = make_task2_bios(0, 1, "retain")[0]
    >>> [row.input.split(" of ")[0].removeprefix("What is the ") for row in doc.rows[1:]]
    ['birth date', 'Social Security number', 'phone number', 'email address', 'home address']
    >>> all(row.output in doc.text for row in doc.rows)
    True
    """
    _check_args(seed, num_docs, split)
    return _task2(_rng(seed, "Task2", split), num_docs, split, _Registry())


# --------------------------------------------------------------------------------------------
# Task3: encyclopedia-style biographies
# --------------------------------------------------------------------------------------------
# Birth cities (one word) and the nationality they imply.
_T3_CITIES = (
    ("Lisbon", "Portuguese"),
    ("Porto", "Portuguese"),
    ("Lyon", "French"),
    ("Toulouse", "French"),
    ("Krakow", "Polish"),
    ("Gdansk", "Polish"),
    ("Bergen", "Norwegian"),
    ("Tampere", "Finnish"),
    ("Ghent", "Belgian"),
    ("Antwerp", "Belgian"),
    ("Leipzig", "German"),
    ("Dresden", "German"),
    ("Bologna", "Italian"),
    ("Genoa", "Italian"),
    ("Seville", "Spanish"),
    ("Bilbao", "Spanish"),
    ("Galway", "Irish"),
    ("Cork", "Irish"),
    ("Utrecht", "Dutch"),
    ("Graz", "Austrian"),
    ("Brno", "Czech"),
    ("Aarhus", "Danish"),
    ("Uppsala", "Swedish"),
    ("Riga", "Latvian"),
)
# occupation, kind of notable work, how it came out, field
_T3_OCCUPATIONS = (
    ("novelist", "novel", "published", "literature"),
    ("poet", "poetry collection", "published", "poetry"),
    ("composer", "symphony", "premiered", "music"),
    ("painter", "painting", "exhibited", "painting"),
    ("film director", "film", "released", "cinema"),
    ("playwright", "play", "staged", "theatre"),
    ("photographer", "photo series", "exhibited", "photography"),
    ("sculptor", "sculpture", "unveiled", "sculpture"),
)
_T3_EARLY_JOBS = ("bank clerk", "translator", "schoolteacher", "journalist", "waiter", "librarian")
_T3_SUBJECTS = tuple(
    "law medicine philosophy chemistry history mathematics architecture economics".split()
)
_T3_TITLE_ADJ = tuple(
    "Silent Glass Last Hidden Winter Broken Northern Paper Distant Quiet Burning Salt".split()
)
_T3_TITLE_NOUN = tuple(
    "Harbour Orchard Garden River Lantern Tide Cathedral Meadow Mirror Season Voyage "
    "Archive".split()
)
_T3_AWARDS = (
    "Halden Medal",
    "Meridian Prize",
    "Corvin Award",
    "Aster Prize",
    "Linden Medal",
    "Ostrava Award",
    "Vesper Prize",
    "Calder Medal",
)
_T3_QUALITIES = (
    "restraint",
    "humour",
    "melancholy",
    "precision",
    "warmth",
    "bold colour",
    "spare style",
    "sense of place",
)
_T3_FAMILIES = (
    "two children",
    "a partner and a dog",
    "a large family",
    "a spouse who is also an artist",
)


def _task3_bio(rng: random.Random, p: _Person) -> tuple[str, tuple[str, str]]:
    city, nationality = rng.choice(_T3_CITIES)
    occupation, work_kind, came_out, field = rng.choice(_T3_OCCUPATIONS)
    born = rng.randint(1930, 1985)
    work_year = born + rng.randint(24, 40)
    award_year = min(work_year + rng.randint(2, 12), 2022)
    title = f"The {rng.choice(_T3_TITLE_ADJ)} {rng.choice(_T3_TITLE_NOUN)}"
    award = rng.choice(_T3_AWARDS)
    quality, quality2 = rng.sample(_T3_QUALITIES, 2)
    home = rng.choice([c for c, _ in _T3_CITIES if c != city])
    opening = rng.choice(
        (
            f"{p.name} (born {born} in {city}) is {_an(nationality)} {occupation}.",
            f"{p.name} is {_an(nationality)} {occupation}, born in {city} in {born}.",
            f"{p.name} (born {born}) is {_an(nationality)} {occupation} from {city}.",
        )
    )
    text = _join(
        (
            opening,
            f"{_cap(p.subj)} studied {rng.choice(_T3_SUBJECTS)} at the University of "
            f"{rng.choice(_T3_CITIES)[0]} before turning to {field}.",
            f"Before {p.poss} breakthrough, {p.subj} spent several years working as "
            f"{_an(rng.choice(_T3_EARLY_JOBS))} in {rng.choice(_T3_CITIES)[0]}.",
            f"{_cap(p.poss)} best-known work, the {work_kind} {title}, was {came_out} in "
            f"{work_year} and brought {p.obj} international attention.",
            f"In {award_year}, {p.subj} received the {award} for {p.poss} contribution to {field}.",
            f"Critics describe {p.last}'s later work as marked by {quality} and {quality2}.",
            f"{_cap(p.subj)} lives in {home} with {rng.choice(_T3_FAMILIES)}.",
        )
    )
    qa = rng.choice(
        (
            (f"In which year was {p.name} born?", str(born)),
            (f"In which city was {p.name} born?", city),
            (f"What is the best-known work of {p.name}?", title),
            (f"Which award did {p.name} receive in {award_year}?", award),
            (f"What is the occupation of {p.name}?", occupation),
        )
    )
    return text, qa


def _task3(rng: random.Random, num_docs: int, split: str, names: _Registry) -> list[Document]:
    docs = []
    for _ in range(num_docs):
        text, qa = _task3_bio(rng, _new_person(rng, names, None))
        docs.append(_document(rng, "Task3", split, text, 3 / 4, [qa]))
    return docs


def make_task3_bios(seed: int, num_docs: int, split: str) -> list[Document]:
    """Task3 stand-ins: encyclopedia-style bios, each with an ``sc1`` row and a ``qa0`` row.

    >>> doc = make_task3_bios(0, 1, "forget")[0]
    >>> doc.rows[1].output in doc.text
    True
    """
    _check_args(seed, num_docs, split)
    return _task3(_rng(seed, "Task3", split), num_docs, split, _Registry())


def _check_args(seed: int, num_docs: int, split: str) -> None:
    _check_int("seed", seed)
    _check_int("num_docs", num_docs, minimum=1)
    _check_split(split)


# --------------------------------------------------------------------------------------------
# The fictional base world (pretraining facts and the utility test)
# --------------------------------------------------------------------------------------------
_FIRST_ONSETS = ("z", "zh", "kh", "vr", "qu", "kr", "zv", "gw")
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "dr", "tr", "sk")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou")
_CODAS = ("", "", "n", "r", "l", "s", "m", "x")
_LINKS = ("n", "r", "l", "s", "m", "d", "v")  # between a final vowel and a vowel suffix


def _invented(rng: random.Random, suffixes: Sequence[str]) -> str:
    """A made-up word: an unusual first syllable, one more syllable and a kind suffix."""
    onset = rng.choice(_FIRST_ONSETS)
    vowels = _VOWELS[:4] if onset == "qu" else _VOWELS
    suffix = rng.choice(suffixes)
    link = rng.choice(_LINKS) if suffix[0] in "aeiou" else ""
    return (
        onset
        + rng.choice(vowels)
        + rng.choice(_CODAS)
        + rng.choice(_ONSETS)
        + rng.choice(_VOWELS[:5])
        + link
        + suffix
    )


# (relation, three phrasings; phrasing 0 ends with the object, so its prefix is the MC prompt)
_RELATIONS: tuple[tuple[str, tuple[str, str, str]], ...] = (
    (
        "capital",
        (
            "The capital of {s} is {o}.",
            "{o} is the capital city of {s}.",
            "The government of {s} meets in the city of {o}.",
        ),
    ),
    (
        "language",
        (
            "The main language spoken in {s} is {o}.",
            "Most people in {s} speak {o}.",
            "{o} is the official language of {s}.",
        ),
    ),
    (
        "diet",
        (
            "The {s} feeds mainly on {o}.",
            "The diet of the {s} consists mostly of {o}.",
            "{O} are the favourite food of the {s}.",
        ),
    ),
    (
        "colour",
        (
            "The colour of the mineral {s} is {o}.",
            "The mineral {s} is {o} in colour.",
            "Crystals of {s} are always {o}.",
        ),
    ),
    (
        "inventor",
        (
            "The {s} was invented by {o}.",
            "{o} invented the {s}.",
            "The first {s} was built by {o}.",
        ),
    ),
)
_MINERAL_COLOURS = tuple(
    "red blue green yellow orange purple black white grey pink brown golden".split()
)
_FOOD_HEADS = ("berries", "roots", "seeds", "beetles", "snails", "leaves", "mushrooms", "worms")


class _World:
    """Invented entity names for the base corpus, unique and disjoint from person-name pools."""

    def __init__(self, rng: random.Random) -> None:
        female, male, last = _name_pools()
        self._rng = rng
        self._names = _Registry((*female, *male, *last, *_COLOURS, *_MINERAL_COLOURS))

    def word(self, what: str, suffixes: Sequence[str], capitalise: bool = True) -> str:
        word = self._names.claim(lambda: _invented(self._rng, suffixes), what)
        return word.capitalize() if capitalise else word

    def subject(self, relation: str) -> str:
        if relation in ("capital", "language"):
            return self.word("country names", ("ia", "ora", "and", "eth", "istan"))
        if relation == "diet":
            return self.word("animal names", ("et", "ling", "oth", "ix"), capitalise=False)
        if relation == "colour":
            return self.word("mineral names", ("ite", "ase", "ine"), capitalise=False)
        return self.word("device names", ("scope", "phone", "wheel", "loom"), capitalise=False)

    def unique_object(self, relation: str) -> str:
        if relation == "capital":
            return self.word("city names", ("el", "in", "ost", "ar", "um"))
        first = self.word("inventor names", ("a", "o", "in", "ar", "is"))
        return f"{first} {self.word('inventor names', ('sen', 'vik', 'ard', 'ell', 'ov'))}"

    def object_pool(self, relation: str) -> tuple[str, ...]:
        """The shared values of a many-to-one relation (``()`` for one-to-one relations)."""
        if relation == "language":
            return tuple(self.word("language names", ("ish", "ese", "ic", "i")) for _ in range(10))
        if relation == "diet":
            return tuple(
                f"{self.word('food names', ('a', 'o', 'el'), capitalise=False)} {head}"
                for head in _FOOD_HEADS
            )
        if relation == "colour":
            return _MINERAL_COLOURS
        return ()


def make_base_corpus(seed: int, num_facts: int) -> tuple[tuple[str, ...], tuple[MCQuestion, ...]]:
    """A fictional world: ``num_facts`` facts, 3 sentences each, and one MC question per fact.

    Facts cycle through five relations (capital of a country, language of a country, diet of an
    animal, colour of a mineral, inventor of a device). A question is phrasing 0 without its
    object, the correct object and three objects of the same relation, in a seeded order.

    >>> text, questions = make_base_corpus(0, 5)
    >>> len(text), len(questions)
    (15, 5)
    >>> q = questions[0]
    >>> q.prompt + q.choices[q.answer] + "." in text
    True
    """
    _check_int("seed", seed)
    _check_int("num_facts", num_facts, minimum=1)
    rng = _rng(seed, "base")
    world = _World(rng)
    relations = [name for name, _ in _RELATIONS]
    pools = {rel: world.object_pool(rel) for rel in relations}
    facts = []  # (relation index, subject, object)
    for i in range(num_facts):
        r = i % len(_RELATIONS)
        rel = relations[r]
        obj = rng.choice(pools[rel]) if pools[rel] else world.unique_object(rel)
        facts.append((r, world.subject(rel), obj))
    rng.shuffle(facts)

    # Distractors are the objects of the relation's other facts, so they too occur in the text;
    # where a relation has fewer than four distinct objects, unused pool values or fresh names
    # top them up.
    candidates: dict[str, set[str]] = {rel: set() for rel in relations}
    for r, _, obj in facts:
        candidates[relations[r]].add(obj)
    for rel in relations:
        spare = [value for value in pools[rel] if value not in candidates[rel]]
        rng.shuffle(spare)
        while len(candidates[rel]) < 4:
            candidates[rel].add(spare.pop() if spare else world.unique_object(rel))

    text, questions = [], []
    for r, subj, obj in facts:
        phrasings = _RELATIONS[r][1]
        text += [p.format(s=subj, o=obj, O=_cap(obj)) for p in phrasings]
        prompt = phrasings[0].split("{o}")[0].rstrip().format(s=subj)
        wrong = rng.sample(sorted(candidates[relations[r]] - {obj}), 3)
        answer = rng.randrange(4)
        choices = [*wrong[:answer], obj, *wrong[answer:]]
        questions.append(MCQuestion(prompt, tuple(" " + c for c in choices), answer))
    return tuple(text), tuple(questions)


# --------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------
def make_lume_data(
    seed: int,
    docs_per_task: int = 250,
    *,
    nonmembers_per_task: int | None = None,
    num_facts: int = 200,
) -> LumeData:
    """Forget, retain and non-member documents of all three tasks, plus the base world.

    Forget and retain get ``docs_per_task`` documents per task each (1:1, as in LUME), grouped
    by task in :data:`~lions_jax.lume.schema.TASKS` order; non-members get
    ``nonmembers_per_task`` per task (default ``docs_per_task``; ``0`` for none). One name
    registry serves the whole call, so no two documents share a person.
    """
    _check_int("seed", seed)
    _check_int("docs_per_task", docs_per_task, minimum=1)
    if nonmembers_per_task is None:
        nonmembers_per_task = docs_per_task
    _check_int("nonmembers_per_task", nonmembers_per_task, minimum=0)
    _check_int("num_facts", num_facts, minimum=1)

    names = _Registry()
    generators = {
        "Task1": lambda rng, n, split: _task1(rng, n, split, names),
        "Task2": lambda rng, n, split: _task2(rng, n, split, names),
        "Task3": lambda rng, n, split: _task3(rng, n, split, names),
    }
    counts = {"forget": docs_per_task, "retain": docs_per_task, "nonmember": nonmembers_per_task}
    splits: dict[str, list[Document]] = {split: [] for split in DOC_SPLITS}
    for split in DOC_SPLITS:
        for task in TASKS:
            if counts[split]:
                splits[split] += generators[task](_rng(seed, task, split), counts[split], split)
    base_text, utility = make_base_corpus(seed, num_facts)
    return LumeData(
        forget=tuple(splits["forget"]),
        retain=tuple(splits["retain"]),
        nonmember=tuple(splits["nonmember"]),
        base_text=base_text,
        utility=utility,
    )


# --------------------------------------------------------------------------------------------
# JSONL input/output
# --------------------------------------------------------------------------------------------
def _parse_row(line: bytes, where: str) -> LumeRow:
    try:
        obj = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not valid UTF-8 ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: invalid JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for field in FIELDS:
        if field not in obj:
            raise ValueError(f"{where}: missing field {field!r}")
        if not isinstance(obj[field], str):
            raise ValueError(
                f"{where}: field {field!r} must be a string, got {type(obj[field]).__name__}"
            )
    try:
        probe_kind(obj["id"])
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return LumeRow(**{field: obj[field] for field in FIELDS})


def load_jsonl(path: str | os.PathLike) -> list[LumeRow]:
    """Reads a LUME JSONL file (e.g. the public ``forget.jsonl``); blank lines are skipped.

    Extra fields are ignored. A malformed row raises ``ValueError`` naming the file, the 1-based
    line number and the problem (``"forget.jsonl line 7: missing field 'output'"``); nothing is
    returned partially.
    """
    path = pathlib.Path(path)
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # tolerate a UTF-8 byte-order mark
    return [
        _parse_row(line, f"{path} line {lineno}")
        for lineno, line in enumerate(data.splitlines(), start=1)
        if line.strip()
    ]


def write_jsonl(rows: Iterable[LumeRow], path: str | os.PathLike) -> pathlib.Path:
    """Writes rows atomically, one JSON object per line, fields in ``FIELDS`` order.

    >>> import tempfile
    >>> rows = make_task1_stories(0, 2, "forget")[0].rows
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     load_jsonl(write_jsonl(rows, f"{tmp}/forget.jsonl")) == list(rows)
    True
    """
    lines = [json.dumps(row.to_dict(), ensure_ascii=False) + "\n" for row in rows]
    return atomic_write_text(path, "".join(lines))
