"""The group commit against the real PostgreSQL: many actions, one transaction, each its own answer."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import outcome
import psycopg
import pytest
import trio
import trio.testing

from pika.db import Database, Tx, open_database
from pika.live.core.effects import Write
from pika.live.group_commit import SHUTTING_DOWN, GroupCommit, Notice, Notify
from pika.live.requests import Duplicate, Refusal
from pika.metrics import REGISTRY
from pika.queries import load_queries, query
from tests.wsclient import until

INSERT_SESSION = query("insert_session")
INSERT_REACTIONS = query("insert_reactions")
INSERT_PLAYED_TRACK = query("insert_played_track")
INSERT_LIKES = query("insert_likes")
DELETE_LIKE = query("delete_like")
QUERIES = Path(__file__).resolve().parents[1] / "sql" / "queries"
SESSION = "GROUPCOMMIT1"


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    async with open_database(db_url, load_queries(QUERIES), pool_size=4) as db:
        await db.one(INSERT_SESSION, session_id=SESSION, dj_id=None, dj_name="DJ", resume_key_sha256="0" * 64)
        yield db


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(rate=1.0)  # real time passes; a jump ends a linger at once


def react(client: str, session: str = SESSION) -> Callable[[Tx], str]:
    """A work that writes one reaction (a statement of its own) and returns the client."""

    def work(tx: Tx) -> str:
        tx.execute(INSERT_REACTIONS, rows=json.dumps([reaction(client, session)]))
        return client

    return work


def reaction(client: str, session: str = SESSION) -> dict[str, str]:
    return {"session_id": session, "client_id": client, "reaction": "thank_you"}


def row(client: str, session: str = SESSION) -> Write:
    """The same reaction as a row: written with the batch's other rows in one statement."""
    return Write(INSERT_REACTIONS, reaction(client, session), row=True)


def stored(db_url: str, sql: str) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql).fetchall()


Action = Callable[[GroupCommit], Awaitable[object]]


async def in_one_batch(db: Database, *actions: Action, notify: Notify | None = None) -> None:
    """Queue `actions` (each awaits one write) in this order while a batch holds in its worker
    thread, so that they share the next batch; return once every one is answered."""
    writes = GroupCommit(db)
    writes.notify = notify
    holding, hold = threading.Event(), threading.Event()
    answered = 0

    def held(tx: Tx) -> None:
        holding.set()
        hold.wait(10)

    async def act(action: Action) -> None:
        nonlocal answered
        await action(writes)
        answered += 1

    async with trio.open_nursery() as nursery:
        await nursery.start(writes.run)
        nursery.start_soon(writes.write, "client:held", None, held)
        await until(holding.is_set, seconds=10)
        for action in actions:
            nursery.start_soon(act, action)
            await trio.testing.wait_all_tasks_blocked()  # queued before the next one starts
        hold.set()
        await until(lambda: answered == len(actions), seconds=10)
        nursery.cancel_scope.cancel()


def _commit_metric() -> tuple[float, float]:
    """pika_group_commit_seconds as /metrics shows it: (batches committed, seconds in all)."""
    count = REGISTRY.get_sample_value("pika_group_commit_seconds_count")
    total = REGISTRY.get_sample_value("pika_group_commit_seconds_sum")
    assert count is not None and total is not None
    return count, total


async def play(db: Database, artist: str, title: str) -> None:
    analytics = ("bpm", "key", "energy", "danceability", "brightness", "acousticness", "groove")
    match_key = f"{artist.casefold()}\x1f{title.casefold()}"
    await db.one(
        INSERT_PLAYED_TRACK,
        session_id=SESSION,
        artist=artist,
        title=title,
        match_key=match_key,
        **dict.fromkeys(analytics),
        ended_play_id=None,
        slower=None,
        perfect=None,
        faster=None,
    )


async def test_actions_queued_during_a_commit_share_the_next_transaction(db: Database, db_url: str) -> None:
    writes = GroupCommit(db)
    holding, hold = threading.Event(), threading.Event()
    batches, seconds = _commit_metric()

    def slow(tx: Tx) -> str:
        holding.set()
        hold.wait(10)
        return react("first")(tx)

    answers: dict[str, str] = {}

    async def act(client: str, work: Callable[[Tx], str]) -> None:
        answers[client] = await writes.write(f"client:{client}", f"m-{client}", work)

    async with trio.open_nursery() as nursery:
        await nursery.start(writes.run)
        nursery.start_soon(act, "first", slow)
        await until(holding.is_set, seconds=10)  # the first batch is in its worker thread, holding
        held_since = time.perf_counter()
        for n in range(40):
            nursery.start_soon(act, f"d{n}", react(f"d{n}") if n % 2 else row(f"d{n}"))
        await trio.testing.wait_all_tasks_blocked()  # all forty queued
        held_for = time.perf_counter() - held_since
        hold.set()
        await until(lambda: len(answers) == 41, seconds=10)
        nursery.cancel_scope.cancel()

    assert answers == {"first": "first"} | {f"d{n}": f"d{n}" if n % 2 else None for n in range(40)}
    # ops see two transactions in pika_group_commit_seconds, the held one as slow as it was
    after_batches, after_seconds = _commit_metric()
    assert after_batches - batches == 2
    assert after_seconds - seconds >= held_for
    writers = "SELECT count(DISTINCT xmin::text) FROM reactions WHERE client_id LIKE 'd%'"
    assert stored(db_url, writers) == [(1,)]  # forty dancers, one transaction
    assert stored(db_url, "SELECT count(*) FROM reactions") == [(41,)]
    claims = stored(db_url, "SELECT count(*) FROM applied_messages")
    assert claims == [(41,)]


async def test_a_refusal_or_a_duplicate_changes_nothing_and_leaves_the_others_alone(
    db: Database, db_url: str
) -> None:
    writes = GroupCommit(db)

    def refuse(tx: Tx) -> str:
        raise Refusal("Track was not played in this session")

    async with trio.open_nursery() as nursery:
        await nursery.start(writes.run)
        assert await writes.write("client:a", "m1", react("a")) == "a"
        results: dict[str, object] = {}

        async def act(key: str, sender: str, message_id: str | None, work: Callable[[Tx], str]) -> None:
            try:
                results[key] = await writes.write(sender, message_id, work)
            except (Refusal, Duplicate) as exc:
                results[key] = exc

        async with trio.open_nursery() as batch:  # queued together, most likely one batch
            batch.start_soon(act, "again", "client:a", "m1", react("a-again"))
            batch.start_soon(act, "refused", "client:b", "m2", refuse)
            batch.start_soon(act, "ok", "client:c", "m3", react("c"))
            batch.start_soon(act, "no id", "client:d", None, react("d"))
        nursery.cancel_scope.cancel()

    assert isinstance(results["again"], Duplicate)
    assert str(results["refused"]) == "Track was not played in this session"
    assert results["ok"] == "c" and results["no id"] == "d"
    assert stored(db_url, "SELECT client_id FROM reactions ORDER BY client_id") == [("a",), ("c",), ("d",)]
    claimed = stored(db_url, "SELECT sender, message_id FROM applied_messages ORDER BY message_id")
    assert claimed == [("client:a", "m1"), ("client:c", "m3")]  # the refused m2 can be retried


def like(client: str, match_key: str) -> Write:
    """A like as an answering row: the statement says, per like, whether it was written."""

    def answer(returned: dict[str, bool]) -> str:
        if not returned["played"]:
            raise Refusal("not played")
        if not returned["liked"]:
            raise Refusal("already liked")
        return f"{client} likes {match_key}"

    values = {"session_id": SESSION, "client_id": client, "match_key": match_key}
    return Write(INSERT_LIKES, values, row=True, answer=answer)


async def test_rows_with_an_answer_each_get_their_own_result_from_one_statement(
    db: Database, db_url: str
) -> None:
    await play(db, "A", "Song")
    results: dict[str, object] = {}

    def act(key: str, sender: str, message_id: str, work: Write) -> Action:
        async def action(writes: GroupCommit) -> None:
            try:
                results[key] = await writes.write(sender, message_id, work)
            except (Refusal, Duplicate) as exc:
                results[key] = exc

        return action

    await in_one_batch(db, act("earlier", "client:c3", "m0", like("client-3", "a\x1fsong")))
    await in_one_batch(
        db,
        act("new", "client:c1", "m1", like("client-1", "a\x1fsong")),
        act("twice in the batch", "client:c1", "m2", like("client-1", "a\x1fsong")),
        act("same id again", "client:c1", "m1", like("client-1", "a\x1fsong")),
        act("not played", "client:c2", "m3", like("client-2", "b\x1fother")),
        act("liked before", "client:c3", "m4", like("client-3", "a\x1fsong")),
        act("thanks", "client:c4", "m5", row("client-4")),
    )

    assert results["new"] == "client-1 likes a\x1fsong"
    assert str(results["twice in the batch"]) == "already liked"
    assert isinstance(results["same id again"], Duplicate)
    assert str(results["not played"]) == "not played"
    assert str(results["liked before"]) == "already liked"
    assert results["thanks"] is None
    likes = stored(db_url, "SELECT client_id FROM likes ORDER BY client_id")
    assert likes == [("client-1",), ("client-3",)]
    claimed = stored(db_url, "SELECT message_id FROM applied_messages ORDER BY message_id")
    assert claimed == [("m0",), ("m1",), ("m5",)]  # refused likes can be retried


async def test_the_notices_of_kept_actions_are_sent_in_the_transaction_that_writes_them(
    db: Database, db_url: str
) -> None:
    """A dancer action on a room another process owns carries a notice for the owner: the batch
    sends those of its kept actions inside its own transaction (here a reaction row stands for
    the NOTIFY), then says it committed; a refused or duplicate action tells nobody."""
    await play(db, "A", "Song")
    sent: list[list[Notice]] = []
    committed: list[int] = []

    def notify(tx: Tx, notices: list[Notice]) -> Callable[[], None]:
        tx.execute(INSERT_REACTIONS, rows=json.dumps([reaction(f"notice {line}") for _, line in notices]))
        sent.append(notices)
        return lambda: committed.append(len(sent))

    def act(sender: str, message_id: str, work: Write | Callable[[Tx], str]) -> Action:
        async def action(writes: GroupCommit) -> None:
            with contextlib.suppress(Refusal, Duplicate):
                await writes.write(sender, message_id, work, notices=lambda result: [("owner", f"{result}")])

        return action

    await in_one_batch(
        db,
        act("client:c1", "m1", like("client-1", "a\x1fsong")),
        act("client:c1", "m2", like("client-1", "a\x1fsong")),  # already liked: refused
        act("client:c1", "m1", react("client-1")),  # the same messageId again: a duplicate
        act("client:c2", "m3", react("client-2")),
        notify=notify,
    )

    assert sent == [[("owner", "client-1 likes a\x1fsong"), ("owner", "client-2")]]
    assert committed == [1]
    rows = "SELECT client_id, xmin::text = (SELECT xmin::text FROM likes) FROM reactions ORDER BY client_id"
    assert stored(db_url, rows) == [
        ("client-2", True),
        ("notice client-1 likes a\x1fsong", True),
        ("notice client-2", True),
    ]


async def test_a_like_and_its_undo_in_one_batch_keep_their_order(db: Database, db_url: str) -> None:
    """Rows are written together, but never after a work that came later: a like then its
    undo (REMOVE_LIKE, a work of its own) leaves no like, as written one after the other."""
    await play(db, "A", "Song")

    def undo(tx: Tx) -> None:
        tx.execute(DELETE_LIKE, session_id=SESSION, client_id="client-1", match_key="a\x1fsong")

    await in_one_batch(
        db,
        lambda writes: writes.write("client:c1", "m1", like("client-1", "a\x1fsong")),
        lambda writes: writes.write("client:c1", "m2", undo),
    )

    assert stored(db_url, "SELECT count(*) FROM likes") == [(0,)]
    assert stored(db_url, "SELECT count(DISTINCT xmin::text) FROM applied_messages") == [(1,)]  # one batch


async def test_a_djs_command_ends_its_batch_so_dancers_after_it_wait_for_the_next(
    db: Database, db_url: str
) -> None:
    """A DJ's write queued among dancers' commits with those queued before it, and no more: its
    frames go out as soon as that smaller batch commits."""
    await in_one_batch(
        db,
        lambda writes: writes.write("client:before", "m1", row("before")),
        lambda writes: writes.write("dj", "m2", react("dj"), ends_batch=True),
        lambda writes: writes.write("client:after", "m3", row("after")),
    )

    batches = stored(db_url, "SELECT client_id, xmin::text FROM reactions ORDER BY client_id")
    xmin = dict(batches)
    assert xmin["before"] == xmin["dj"] != xmin["after"]


async def test_a_failing_action_fails_alone_and_the_rest_of_its_batch_is_written(
    db: Database, db_url: str
) -> None:
    writes = GroupCommit(db)
    results: dict[str, object] = {}

    async def act(client: str, session: str) -> None:
        try:
            results[client] = await writes.write(f"client:{client}", f"m-{client}", row(client, session))
        except psycopg.Error as exc:
            results[client] = exc

    async with trio.open_nursery() as nursery:
        await nursery.start(writes.run)
        async with trio.open_nursery() as batch:
            batch.start_soon(act, "before", SESSION)
            batch.start_soon(act, "broken", "NO-SUCH-SESSION")  # a foreign-key violation
            batch.start_soon(act, "after", SESSION)
        nursery.cancel_scope.cancel()

    assert results["before"] is None and results["after"] is None  # written
    assert isinstance(results["broken"], psycopg.errors.ForeignKeyViolation)
    assert stored(db_url, "SELECT client_id FROM reactions ORDER BY client_id") == [("after",), ("before",)]
    claimed = stored(db_url, "SELECT message_id FROM applied_messages ORDER BY message_id")
    assert claimed == [("m-after",), ("m-before",)]


async def test_the_flusher_writes_on_its_own_connection_and_a_killed_one_is_replaced(
    db: Database, db_url: str
) -> None:
    writes = GroupCommit(db)
    answers: list[object] = []

    async def act(client: str) -> None:
        try:
            answers.append(await writes.write(f"client:{client}", f"m-{client}", row(client)))
        except (psycopg.Error, Refusal) as exc:  # the batch that meets the killed connection
            answers.append(exc)

    async with trio.open_nursery() as nursery:
        await nursery.start(writes.run)
        await act("first")
        killed = stored(
            db_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pika-writes'",
        )
        assert killed == [(True,)]  # one connection, the flusher's own
        for n in range(1, 20):  # an error while it reconnects is the action's own: nothing changed
            await act(f"try-{n}")
            if answers[-1] is None:
                break
        nursery.cancel_scope.cancel()

    assert answers[0] is None and answers[-1] is None, answers
    written = {f"try-{n}" for n, answer in enumerate(answers[1:], start=1) if answer is None}
    assert stored(db_url, "SELECT client_id FROM reactions ORDER BY client_id") == sorted(
        [(c,) for c in {"first", *written}]
    )


async def test_actions_still_queued_at_shutdown_are_refused_not_lost_silently(
    db: Database, db_url: str
) -> None:
    writes = GroupCommit(db)
    holding, hold = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def slow(tx: Tx) -> str:
        holding.set()
        hold.wait(10)
        return react("first")(tx)

    async def act(client: str, work: Callable[[Tx], str]) -> None:
        with trio.CancelScope(shield=True):  # handlers run shielded (live/handlers.py)
            try:
                results[client] = await writes.write(f"client:{client}", None, work)
            except Refusal as exc:
                results[client] = exc

    async with trio.open_nursery() as outer, trio.open_nursery() as flusher:
        await flusher.start(writes.run)
        outer.start_soon(act, "first", slow)
        await until(holding.is_set, seconds=10)
        outer.start_soon(act, "queued", react("queued"))
        await trio.testing.wait_all_tasks_blocked()  # queued behind the batch in flight
        flusher.cancel_scope.cancel()  # the hub shuts down while the first batch commits
        hold.set()

    assert results["first"] == "first"  # in flight: committed and answered
    assert str(results["queued"]) == SHUTTING_DOWN
    assert stored(db_url, "SELECT client_id FROM reactions") == [("first",)]
    with pytest.raises(Refusal, match="restarting"):
        await writes.write("client:late", None, react("late"))


async def test_cancelling_a_waiter_drops_a_queued_action_but_answers_a_taken_one(
    db: Database, db_url: str
) -> None:
    """A socket that closes mid-action: nothing half-done, nothing committed and left untold."""
    writes = GroupCommit(db)
    holding, hold = threading.Event(), threading.Event()
    answered: list[str] = []
    scopes: dict[str, trio.CancelScope] = {}

    def slow(tx: Tx) -> str:
        holding.set()
        hold.wait(10)
        return react("taken")(tx)

    async def act(client: str, work: Callable[[Tx], str]) -> None:
        with trio.CancelScope() as scopes[client]:
            answered.append(await writes.write(f"client:{client}", None, work))

    async with trio.open_nursery() as nursery:
        await nursery.start(writes.run)
        nursery.start_soon(act, "taken", slow)
        await until(holding.is_set, seconds=10)  # in the batch being written
        nursery.start_soon(act, "queued", react("queued"))
        await trio.testing.wait_all_tasks_blocked()  # waiting for the next batch
        scopes["taken"].cancel()
        scopes["queued"].cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert answered == []  # the taken one still waits for its commit
        hold.set()
        await until(lambda: answered, seconds=10)
        await trio.testing.wait_all_tasks_blocked()  # a queued one not dropped would be in a batch now
        nursery.cancel_scope.cancel()

    assert answered == ["taken"]
    assert stored(db_url, "SELECT client_id FROM reactions") == [("taken",)]


async def test_submitted_actions_are_released_then_answered_in_batch_order_without_a_waiting_task(
    db: Database, db_url: str
) -> None:
    """`submit` (a dancer's reader that does not wait): each action's release, then its answer,
    in the order the batch holds them, interleaved with a waiting writer's; one queued when the
    flusher stops is answered with the refusal."""
    writes = GroupCommit(db)
    holding, hold = threading.Event(), threading.Event()
    told: list[str] = []

    def held(tx: Tx) -> None:
        holding.set()
        hold.wait(10)

    def submit(client: str) -> None:
        def answer(result: outcome.Outcome[object]) -> None:
            told.append(
                f"answer {client}: {result.unwrap() if isinstance(result, outcome.Value) else result.error}"
            )

        writes.submit(
            f"client:{client}", f"m-{client}", row(client), lambda _: told.append(f"release {client}"), answer
        )

    async def wait(client: str) -> None:
        await writes.write(f"client:{client}", f"m-{client}", row(client))
        told.append(f"woke {client}")

    async with trio.open_nursery() as nursery:
        await nursery.start(writes.run)
        nursery.start_soon(writes.write, "client:held", None, held)
        await until(holding.is_set, seconds=10)
        submit("a")
        nursery.start_soon(wait, "b")
        await trio.testing.wait_all_tasks_blocked()
        submit("c")
        hold.set()
        await until(lambda: "woke b" in told, seconds=10)
        nursery.cancel_scope.cancel()
    submit("late")

    assert told == [
        "release a",
        "release c",
        "answer a: None",
        "answer c: None",
        "woke b",
        f"answer late: {SHUTTING_DOWN}",
    ]
    assert stored(db_url, "SELECT client_id FROM reactions ORDER BY client_id") == [("a",), ("b",), ("c",)]


async def test_dancers_taps_wait_for_company_and_a_waiting_writer_takes_them_at_once(
    clock: trio.testing.MockClock, db: Database, db_url: str
) -> None:
    """Submitted actions alone wait until `fill` of them are queued, or the oldest has waited
    `linger`; a waiting writer (a DJ's command) takes whatever waits with it at once."""
    writes = GroupCommit(db, fill=3, linger=60)
    answered: list[str] = []

    def submit(client: str) -> None:
        writes.submit(f"client:{client}", f"m-{client}", row(client), None, lambda _: answered.append(client))

    async with trio.open_nursery() as nursery:
        await nursery.start(writes.run)
        submit("a")
        submit("b")
        await trio.testing.wait_all_tasks_blocked()
        assert answered == []
        submit("c")  # the third: the batch goes
        await until(lambda: len(answered) == 3, seconds=10)

        submit("d")
        await trio.testing.wait_all_tasks_blocked()
        assert answered == ["a", "b", "c"]
        with trio.fail_after(10):  # not the 60 s linger
            await writes.write("client:dj", "m-dj", row("dj"))
        assert answered == ["a", "b", "c", "d"]

        submit("e")
        clock.jump(59)
        await trio.testing.wait_all_tasks_blocked()
        assert answered[-1] == "d"
        clock.jump(1)  # e has waited the whole linger: it goes alone
        await until(lambda: answered[-1] == "e", seconds=10)
        nursery.cancel_scope.cancel()

    by_transaction = "SELECT string_agg(client_id, ' ' ORDER BY client_id) FROM reactions GROUP BY xmin::text"
    batches = stored(db_url, by_transaction)
    assert sorted(batches) == [("a b c",), ("d dj",), ("e",)]


async def test_a_reader_waits_for_room_while_a_whole_batch_is_queued_and_goes_on_when_it_is_taken(
    db: Database, db_url: str
) -> None:
    """While a batch's worth of actions waits behind the one in flight the queue is `full`, and a
    dancer's reader waits in `room()` before deciding its next frame (a DJ's command does not);
    once the flusher takes that batch the reader goes on."""
    writes = GroupCommit(db, max_batch=2)
    holding, hold = threading.Event(), threading.Event()
    told: list[str] = []

    def held(tx: Tx) -> None:
        holding.set()
        hold.wait(10)

    async def reader() -> None:
        await writes.room()
        told.append("room")

    async with trio.open_nursery() as nursery:
        await nursery.start(writes.run)
        nursery.start_soon(writes.write, "client:held", None, held)
        await until(holding.is_set, seconds=10)
        for client in ("a", "b"):
            writes.submit(f"client:{client}", None, row(client), None, lambda result: told.append("answer"))
        assert writes.full
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert told == []  # waiting: two actions queued behind the batch in flight
        hold.set()
        await until(lambda: told.count("answer") == 2, seconds=10)
        assert told[0] == "room"  # let go as the flusher took the queued batch, before it committed
        assert not writes.full
        nursery.cancel_scope.cancel()
