"""Tests for the synthetic LUME data generators and the JSONL reader/writer."""

import json
import re
import uuid

import pytest

import lions_jax.lume.data as data_module
from lions_jax.lume.data import (
    DOC_SPLITS,
    LumeData,
    load_jsonl,
    make_base_corpus,
    make_lume_data,
    make_task1_stories,
    make_task2_bios,
    make_task3_bios,
    write_jsonl,
)
from lions_jax.lume.schema import FIELDS, TASKS, LumeRow

DOCS_PER_TASK = 250  # the default size: the name registry and word counts are checked at scale
NUM_FACTS = 200


@pytest.fixture(scope="module")
def data() -> LumeData:
    return make_lume_data(0, DOCS_PER_TASK, nonmembers_per_task=100, num_facts=NUM_FACTS)


def all_docs(data):
    return data.forget + data.retain + data.nonmember


def person_name(doc):
    """Every document starts with its person's full name (two words)."""
    return re.match(r"[A-Za-z]+ [A-Za-z]+", doc.text).group()


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------
def test_row_ids_fields_and_counts(data):
    for doc in all_docs(data):
        expected = (
            ["sc1", "qa0", "qa1", "qa2", "qa3", "qa4"] if doc.task == "Task2" else ["sc1", "qa0"]
        )
        assert [row.id[len(doc.id) :] for row in doc.rows] == expected
        assert uuid.UUID(doc.id).version == 4 and str(uuid.UUID(doc.id)) == doc.id
        for row in doc.rows:
            assert row.id.startswith(doc.id)
            assert (row.task, row.split) == (doc.task, doc.split)
            assert row.kind == row.id[-3:-1]
            assert row.output and row.output == row.output.strip()
    assert len({doc.id for doc in all_docs(data)}) == len(all_docs(data))


def test_splits_are_one_to_one_per_task(data):
    for split, docs, per_task in [
        ("forget", data.forget, DOCS_PER_TASK),
        ("retain", data.retain, DOCS_PER_TASK),
        ("nonmember", data.nonmember, 100),
    ]:
        assert [doc.task for doc in docs] == [t for t in TASKS for _ in range(per_task)]
        assert {doc.split for doc in docs} == {split}
    assert data.members == data.forget
    assert data.forget_rows == tuple(row for doc in data.forget for row in doc.rows)
    assert {row.split for row in data.retain_rows} == {"retain"}
    assert len(data.forget_rows) == DOCS_PER_TASK * (2 + 6 + 2)
    assert data.task3_docs == data.forget[-DOCS_PER_TASK:] + data.retain[-DOCS_PER_TASK:]


def test_sc_rows_split_the_document(data):
    for doc in all_docs(data):
        sc = doc.rows[0]
        assert sc.input + " " + sc.output == doc.text
        words, kept = len(doc.text.split(" ")), len(sc.input.split(" "))
        keep = 1 / 2 if doc.task == "Task2" else 3 / 4
        assert abs(kept / words - keep) < 0.02


def test_qa_answers_appear_in_the_document(data):
    for doc in all_docs(data):
        for row in doc.rows[1:]:
            assert row.output in doc.text
            assert person_name(doc) in row.input and row.input.endswith("?")
            if doc.task != "Task2":
                assert 1 <= len(row.output.split()) <= 3


def test_task2_pii_formats(data):
    for doc in all_docs(data):
        if doc.task != "Task2":
            continue
        first, colour = person_name(doc).split(" ")
        dob, ssn, phone, email, address = (row.output for row in doc.rows[1:])
        assert re.fullmatch(r"(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", dob)
        assert re.fullmatch(r"900-\d\d-\d{4}", ssn)
        assert re.fullmatch(r"\d{10}", phone)
        assert email == f"{first.lower()}_{colour.lower()}@me.com"
        assert re.fullmatch(r"\d+ [A-Za-z0-9 .]+, [A-Za-z ]+, [A-Z]{2} \d{5}", address)
        assert [row.input.split(" of ")[0] for row in doc.rows[1:]] == [
            "What is the birth date",
            "What is the Social Security number",
            "What is the phone number",
            "What is the email address",
            "What is the home address",
        ]


def test_text_length_and_ascii(data):
    bounds = {"Task1": (70, 110), "Task2": (40, 60), "Task3": (70, 110)}
    for doc in all_docs(data):
        low, high = bounds[doc.task]
        assert low <= len(doc.text.split()) <= high, doc.text
        assert doc.text.isascii() and "\n" not in doc.text and "  " not in doc.text


def test_person_names_are_unique_and_nonmembers_disjoint(data):
    names = [person_name(doc) for doc in all_docs(data)]
    assert all(re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", name) for name in names)
    assert len(set(names)) == len(names)
    members = data.forget + data.retain
    assert not {d.id for d in data.nonmember} & {d.id for d in members}
    assert not {d.text for d in data.nonmember} & {d.text for d in members}


# --------------------------------------------------------------------------------------------
# Determinism and the single-task generators
# --------------------------------------------------------------------------------------------
def test_same_seed_same_data_different_seed_different_data():
    a, b = make_lume_data(3, 4, num_facts=10), make_lume_data(3, 4, num_facts=10)
    assert a == b
    c = make_lume_data(4, 4, num_facts=10)
    for field in ("forget", "retain", "nonmember"):
        assert not {d.text for d in getattr(a, field)} & {d.text for d in getattr(c, field)}
    assert a.base_text != c.base_text and a.utility != c.utility


@pytest.mark.parametrize("make", [make_task1_stories, make_task2_bios, make_task3_bios])
@pytest.mark.parametrize("split", DOC_SPLITS)
def test_single_task_generators(make, split):
    docs = make(7, 5, split)
    assert docs == make(7, 5, split)
    assert [d.text for d in docs] != [d.text for d in make(8, 5, split)]
    assert len(docs) == 5 and len({person_name(d) for d in docs}) == 5
    assert {row.split for d in docs for row in d.rows} == {split}


# --------------------------------------------------------------------------------------------
# The base world and the utility questions
# --------------------------------------------------------------------------------------------
def test_base_corpus_questions(data):
    assert len(data.base_text) == 3 * NUM_FACTS and len(data.utility) == NUM_FACTS
    assert len(set(data.base_text)) == len(data.base_text)
    answers = set()
    for q in data.utility:
        assert len(q.choices) == 4 and len(set(q.choices)) == 4
        assert all(c.startswith(" ") and c.strip() == c[1:] for c in q.choices)
        assert 0 <= q.answer < 4
        assert q.prompt + q.choices[q.answer] + "." in data.base_text
        # Wrong choices are not facts about this subject.
        for i, choice in enumerate(q.choices):
            if i != q.answer:
                assert q.prompt + choice + "." not in data.base_text
        answers.add(q.answer)
    assert answers == {0, 1, 2, 3}
    assert make_base_corpus(0, NUM_FACTS) == (data.base_text, data.utility)


def test_base_world_names_do_not_collide_with_people(data):
    world_words = {w.strip(".") for sentence in data.base_text for w in sentence.split()}
    people = {w for doc in all_docs(data) for w in person_name(doc).split()}
    assert not world_words & people
    assert all(s.isascii() for s in data.base_text)


# --------------------------------------------------------------------------------------------
# JSONL
# --------------------------------------------------------------------------------------------
def test_jsonl_round_trip(data, tmp_path):
    accented = LumeRow("abcdefqa0", "Qui a écrit ?", "Zoé", "Task1", "forget")
    rows = (*data.forget_rows, accented)
    path = write_jsonl(iter(rows), tmp_path / "sub" / "forget.jsonl")
    assert path == tmp_path / "sub" / "forget.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(rows)
    assert list(json.loads(lines[0])) == list(FIELDS)
    assert '"Zoé"' in lines[-1]  # ensure_ascii=False
    assert load_jsonl(path) == list(rows)
    assert load_jsonl(str(path)) == list(rows)


def test_load_jsonl_skips_blank_lines_and_ignores_extra_fields(tmp_path):
    row = {"id": "abcsc1", "input": "a", "output": "b", "task": "Task1", "split": "retain"}
    path = tmp_path / "retain.jsonl"
    path.write_text("\n" + json.dumps({**row, "extra": 1}) + "\n  \n" + json.dumps(row) + "\n")
    assert load_jsonl(path) == [LumeRow(**row)] * 2


_GOOD = {"id": "abcqa0", "input": "q?", "output": "a", "task": "Task2", "split": "forget"}


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"id": "abcqa0", ', r"invalid JSON"),
        ('["abcqa0", "q?"]', r"expected a JSON object, got list"),
        (json.dumps({k: v for k, v in _GOOD.items() if k != "output"}), r"missing field 'output'"),
        (json.dumps({**_GOOD, "task": 1}), r"field 'task' must be a string, got int"),
        (json.dumps({**_GOOD, "split": None}), r"field 'split' must be a string, got NoneType"),
        (
            json.dumps({**_GOOD, "id": "abcqa"}),
            r"row id 'abcqa' must end in 'sc<digit>' or 'qa<digit>'",
        ),
        (json.dumps({**_GOOD, "id": "abc"}), r"row id 'abc' must end in 'sc<digit>'"),
    ],
)
def test_load_jsonl_rejects_malformed_rows(tmp_path, bad_line, message):
    path = tmp_path / "forget.jsonl"
    path.write_text(json.dumps(_GOOD) + "\n\n" + bad_line + "\n" + json.dumps(_GOOD) + "\n")
    with pytest.raises(ValueError, match=r"forget\.jsonl line 3: " + message):
        load_jsonl(path)


def test_load_jsonl_rejects_invalid_utf8(tmp_path):
    path = tmp_path / "forget.jsonl"
    path.write_bytes(json.dumps(_GOOD).encode() + b'\n{"id": "\xff"}\n')
    with pytest.raises(ValueError, match=r"forget\.jsonl line 2: not valid UTF-8"):
        load_jsonl(path)


# --------------------------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [make_task1_stories, make_task2_bios, make_task3_bios])
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_docs": 0}, "num_docs must be >= 1"),
        ({"split": "test"}, "split must be one of"),
        ({"split": "Forget"}, "split must be one of"),
        ({"seed": True}, "seed must be an int"),
    ],
)
def test_generators_reject_bad_arguments(make, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**{"seed": 0, "num_docs": 2, "split": "forget", **kwargs})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"docs_per_task": 0}, "docs_per_task must be >= 1"),
        ({"nonmembers_per_task": -1}, "nonmembers_per_task must be >= 0"),
        ({"num_facts": 0}, "num_facts must be >= 1"),
        ({"seed": False}, "seed must be an int"),
    ],
)
def test_make_lume_data_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_lume_data(**{"seed": 0, "docs_per_task": 2, **kwargs})


def test_make_base_corpus_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_facts must be >= 1"):
        make_base_corpus(0, 0)


def test_no_nonmembers():
    assert make_lume_data(0, 1, nonmembers_per_task=0, num_facts=1).nonmember == ()


def test_name_registry_reports_an_exhausted_pool():
    names = data_module._Registry(reserved=["Ada Amber"])
    assert names.claim(lambda: "Bo Teal", "person names") == "Bo Teal"
    with pytest.raises(ValueError, match="ran out of unique person names"):
        names.claim(lambda: "ada AMBER", "person names", tries=3)
