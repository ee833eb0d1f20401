"""The study file: one SQLite database (WAL journal) holding the study's questions, its images and every vote.

Self-contained: the images are stored in it (PNG, deduplicated by content), so the study moves as one file and
the page never reads the method folders. Tables:

    meta(key, value)                                   format, version, salt (the secret of the blind orders)
    methods(id, name)
    images(id, sha256, png)
    tasks(id, subject, prompt, source)                 one (subject, prompt, image) cell shown to evaluators
    task_references(task_id, position, image_id)
    candidates(task_id, method_id, image_id)           each method's image for the task
    votes(evaluator, task_id, question, method_id, position, cast_at)   primary key (evaluator, task_id, question)

Blind and random: every evaluator answers every (task, question) pair in an order of their own, and sees the
methods of each pair in an order of their own, labelled only A, B, C …. Both orders are drawn from the study's
secret salt and the evaluator's name, so they are the same when an evaluator comes back (resume) and the page
never holds a method's name: a vote says "B" and the server maps it back.

Every vote is committed when it is cast (autocommit, `synchronous=FULL`): once `cast` returns, a kill of the
server, even SIGKILL, cannot lose it.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from flexip.app.study import QUESTIONS
from flexip.errors import FlexIPInputError

FORMAT = "flexip-study"
VERSION = "1"
LETTERS = "ABCDEFGHIJKL"
MAX_EVALUATOR_NAME = 64

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE methods (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE images (id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, png BLOB NOT NULL);
CREATE TABLE tasks (id INTEGER PRIMARY KEY, subject TEXT NOT NULL, prompt TEXT NOT NULL, source TEXT NOT NULL);
CREATE TABLE task_references (
    task_id INTEGER NOT NULL REFERENCES tasks(id), position INTEGER NOT NULL, image_id INTEGER NOT NULL REFERENCES images(id),
    PRIMARY KEY (task_id, position));
CREATE TABLE candidates (
    task_id INTEGER NOT NULL REFERENCES tasks(id), method_id INTEGER NOT NULL REFERENCES methods(id),
    image_id INTEGER NOT NULL REFERENCES images(id), PRIMARY KEY (task_id, method_id));
CREATE TABLE votes (
    evaluator TEXT NOT NULL, task_id INTEGER NOT NULL REFERENCES tasks(id),
    question TEXT NOT NULL CHECK (question IN ('flex', 'id_pres')),
    method_id INTEGER NOT NULL REFERENCES methods(id), position INTEGER NOT NULL, cast_at TEXT NOT NULL,
    PRIMARY KEY (evaluator, task_id, question));
"""


@dataclass(frozen=True)
class TaskSpec:
    """One task of a new study: the subject's reference images and each method's image, as PNG bytes."""

    subject: str
    prompt: str
    source: str  # where its images came from, e.g. "dog/03/0.png"
    references: tuple[bytes, ...]
    candidates: dict[str, bytes]  # method name → image


@dataclass(frozen=True)
class Ballot:
    """One question as an evaluator sees it: the task, the question, and the methods in their blind order."""

    evaluator: str
    task_id: int
    question: str
    subject: str
    prompt: str
    order: tuple[int, ...]  # method ids, in the order shown as A, B, C …
    number: int  # 1-based position in this evaluator's sequence
    total: int
    answered: int

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.order)]


def check_evaluator(name) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_EVALUATOR_NAME or not name.isprintable():
        raise FlexIPInputError(f"type your evaluator name or code (1 to {MAX_EVALUATOR_NAME} printable characters); use the same one to resume")
    return name


class StudyStore:
    """An existing study file (see the module docstring). Each call opens its own short connection, so the store
    is safe to use from the server's worker threads."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FlexIPInputError(f"study file not found: {self.path} (make one with `flexip study create`)")
        try:
            meta = self._meta()
        except sqlite3.DatabaseError as error:
            raise FlexIPInputError(f"{self.path} is not a FlexIP study file ({error})") from None
        if meta.get("format") != FORMAT:
            raise FlexIPInputError(f"{self.path} is not a FlexIP study file (made by `flexip study create`)")
        if meta.get("version") != VERSION:
            raise FlexIPInputError(f"{self.path} is a version {meta.get('version')} study; this flexip reads version {VERSION}")
        self.salt = meta["salt"]

    # ---- making one ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, methods: Sequence[str], tasks: Sequence[TaskSpec], description: str = "") -> StudyStore:
        """Write a new study file (atomically: complete or absent). Refuses to replace an existing file."""
        from flexip.atomic import atomic_path

        path = Path(path)
        if path.exists():
            raise FlexIPInputError(f"{path} exists; choose another file name (a study file holds its votes)")
        if not 2 <= len(methods) <= len(LETTERS) or len(set(methods)) != len(methods):
            raise FlexIPInputError(f"a study compares 2 to {len(LETTERS)} methods with distinct names, got {list(methods)}")
        if not tasks:
            raise FlexIPInputError("a study needs at least one task")
        with atomic_path(path) as temporary:
            temporary.unlink()  # sqlite makes the file itself
            with closing(_connect(temporary)) as db:
                db.executescript(SCHEMA)
                db.execute("BEGIN")
                created = datetime.now(UTC).isoformat(timespec="seconds")
                meta = {"format": FORMAT, "version": VERSION, "salt": secrets.token_hex(16), "created": created, "description": description}
                db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
                method_ids = {name: db.execute("INSERT INTO methods (name) VALUES (?)", (name,)).lastrowid for name in methods}
                for task in tasks:
                    if set(task.candidates) != set(methods):
                        raise FlexIPInputError(f"task {task.source}: has images of {sorted(task.candidates)}, expected {sorted(methods)}")
                    task_id = db.execute(
                        "INSERT INTO tasks (subject, prompt, source) VALUES (?, ?, ?)", (task.subject, task.prompt, task.source)
                    ).lastrowid
                    for position, png in enumerate(task.references):
                        db.execute("INSERT INTO task_references VALUES (?, ?, ?)", (task_id, position, _image_id(db, png)))
                    for name, png in task.candidates.items():
                        db.execute("INSERT INTO candidates VALUES (?, ?, ?)", (task_id, method_ids[name], _image_id(db, png)))
                db.execute("COMMIT")
        return cls(path)

    # ---- reading ----------------------------------------------------------------------------------------
    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(_connect(self.path)) as db:
            yield db

    def _meta(self) -> dict[str, str]:
        with self._db() as db:
            return dict(db.execute("SELECT key, value FROM meta"))

    def methods(self) -> dict[int, str]:
        with self._db() as db:
            return dict(db.execute("SELECT id, name FROM methods ORDER BY id"))

    def task_ids(self) -> list[int]:
        with self._db() as db:
            return [row[0] for row in db.execute("SELECT id FROM tasks ORDER BY id")]

    def evaluators(self) -> list[str]:
        with self._db() as db:
            return [row[0] for row in db.execute("SELECT DISTINCT evaluator FROM votes ORDER BY evaluator")]

    def sequence(self, evaluator: str) -> list[tuple[int, str]]:
        """Every (task, question) pair, in this evaluator's own random order."""
        pairs = [(task, question) for task in self.task_ids() for question in QUESTIONS]
        random.Random(f"{self.salt}|{evaluator}").shuffle(pairs)
        return pairs

    def order(self, evaluator: str, task_id: int, question: str) -> tuple[int, ...]:
        """The methods of one question in this evaluator's own random order (shown as A, B, C …)."""
        with self._db() as db:
            ids = [row[0] for row in db.execute("SELECT method_id FROM candidates WHERE task_id = ? ORDER BY method_id", (task_id,))]
        random.Random(f"{self.salt}|{evaluator}|{task_id}|{question}").shuffle(ids)
        return tuple(ids)

    def next_ballot(self, evaluator: str) -> Ballot | None:
        """The evaluator's first unanswered question (None when they answered all): where they resume."""
        evaluator = check_evaluator(evaluator)
        sequence = self.sequence(evaluator)
        with self._db() as db:
            done = set(db.execute("SELECT task_id, question FROM votes WHERE evaluator = ?", (evaluator,)))
        for number, (task_id, question) in enumerate(sequence, 1):
            if (task_id, question) not in done:
                with self._db() as db:
                    subject, prompt = db.execute("SELECT subject, prompt FROM tasks WHERE id = ?", (task_id,)).fetchone()
                order = self.order(evaluator, task_id, question)
                return Ballot(evaluator, task_id, question, subject, prompt, order, number, len(sequence), len(done))
        return None

    def progress(self, evaluator: str) -> tuple[int, int]:
        """(answered, total) for one evaluator."""
        with self._db() as db:
            answered = db.execute("SELECT COUNT(*) FROM votes WHERE evaluator = ?", (check_evaluator(evaluator),)).fetchone()[0]
        return answered, len(self.task_ids()) * len(QUESTIONS)

    def reference_images(self, task_id: int) -> list[Image.Image]:
        with self._db() as db:
            rows = db.execute(
                "SELECT png FROM task_references JOIN images ON images.id = image_id WHERE task_id = ? ORDER BY position", (task_id,)
            ).fetchall()
        return [_decode(row[0]) for row in rows]

    def candidate_images(self, ballot: Ballot) -> list[Image.Image]:
        """The ballot's images in its blind order."""
        with self._db() as db:
            by_method = dict(
                db.execute("SELECT method_id, png FROM candidates JOIN images ON images.id = image_id WHERE task_id = ?", (ballot.task_id,))
            )
        return [_decode(by_method[method]) for method in ballot.order]

    # ---- voting --------------------------------------------------------------------------------------
    def cast(self, ballot: Ballot, letter: str) -> bool:
        """Record the evaluator's choice (a letter of the ballot) and commit it; False if this question already had a
        vote from them (the first vote stands)."""
        if not isinstance(letter, str) or len(letter) != 1 or letter not in ballot.letters:
            raise FlexIPInputError(f"choose one of {', '.join(ballot.letters)}, got {letter!r}")
        order = self.order(ballot.evaluator, ballot.task_id, ballot.question)  # recomputed: the page's copy is not trusted
        position = ballot.letters.index(letter)
        with self._db() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO votes VALUES (?, ?, ?, ?, ?, ?)",
                (ballot.evaluator, ballot.task_id, ballot.question, order[position], position, datetime.now(UTC).isoformat(timespec="milliseconds")),
            )
        return cursor.rowcount == 1

    def counts(self) -> dict[str, dict[str, int]]:
        """counts[question][method name]: the votes each method received."""
        names = self.methods()
        counts: dict[str, dict[str, int]] = {question: {} for question in QUESTIONS}
        with self._db() as db:
            for question, method, votes in db.execute("SELECT question, method_id, COUNT(*) FROM votes GROUP BY question, method_id"):
                counts[question][names[method]] = votes
        return counts

    def votes(self) -> list[dict]:
        """Every vote, oldest first, with the method's name and what the evaluator was shown."""
        with self._db() as db:
            rows = db.execute(
                "SELECT evaluator, tasks.subject, tasks.prompt, tasks.source, question, methods.name, position, cast_at "
                "FROM votes JOIN tasks ON tasks.id = task_id JOIN methods ON methods.id = method_id ORDER BY cast_at, evaluator"
            ).fetchall()
        keys = ("evaluator", "subject", "prompt", "source", "question", "method", "letter", "cast_at")
        return [dict(zip(keys, (*row[:6], LETTERS[row[6]], row[7]))) for row in rows]


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)  # autocommit: each INSERT is committed when it returns
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    return db


def _image_id(db: sqlite3.Connection, png: bytes) -> int:
    digest = hashlib.sha256(png).hexdigest()
    row = db.execute("SELECT id FROM images WHERE sha256 = ?", (digest,)).fetchone()
    return row[0] if row else db.execute("INSERT INTO images (sha256, png) VALUES (?, ?)", (digest, png)).lastrowid


def _decode(png: bytes) -> Image.Image:
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("RGB")
