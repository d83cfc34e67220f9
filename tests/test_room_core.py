"""The room core (pika.live.core) driven by random command sequences, checked against a model.

Hypothesis plays a DJ, dancers, the database (each write's returned row, or a timeout) and the
clock (timers the core set fire when time passes them), and checks the protocol's invariants
after every step: one active poll, the latest track wins, tempo votes reset per track and count
only once stored, the DJ hears of likes in commit order, an ended session accepts nothing, and
no frame of a decision is released before a write of it (nothing visible before it is durable).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pika.live.core import commands as c
from pika.live.core.effects import CancelTimer, Effect, Refuse, Send, SetTimer, Write
from pika.live.core.ownership import NOT_AVAILABLE, attach_refusal, resume_refusal
from pika.live.core.room import decide
from pika.live.core.state import RoomState
from pika.live.listeners import Listeners
from pika.live.polls import VoteRejected
from pika.live.track_pace import TrackPace
from pika.protocol import TrackInfo

LINGER = 30.0
MAY_REFUSE = {"insert_played_track", "insert_poll"}  # return no row for an ended session, a 2nd poll
TRACKS = [
    TrackInfo("Song A", "Artist"),
    TrackInfo("Song B", "Artist"),
    TrackInfo("song a ", "ARTIST", bpm=120.0),
]
CLIENTS = ["c1", "c2", "c3"]
tracks = st.sampled_from(TRACKS)
clients = st.sampled_from(CLIENTS)


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class RoomMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000_000.0
        self.state = RoomState("s1", "DJ", TrackPace(burst=3, rate=0.2, lookback=60.0), Listeners(LINGER))
        self.timers: dict[str, float] = {}
        self.sent: list[dict[str, Any]] = []  # every frame released, in order
        self.stored: list[Write] = []  # every write committed, in order
        self.next_id = 1
        self.uncommitted: list[tuple[c.Like | c.CastTempo | c.Thanks | c.PollVote, Write]] = []
        self.db_ballots: set[tuple[int, str]] = set()
        self.db_likes: set[tuple[str, str]] = set()
        self.played: set[str] = set()  # match keys stored in played_tracks
        self.likes_accepted: list[str] = []  # clients whose like committed, in order
        # the model
        self.playing: TrackInfo | None = None
        self.votes: dict[str, str] = {}
        self.poll_id: int | None = None
        self.ballots: dict[str, int] = {}
        self.ended = False

    # -- the shell's part: decide, then commit writes, then release frames ----------------

    def run(self, command: c.Command, done: c.Command | None = None) -> tuple[Effect, ...]:
        """Decide `command`; when its write returns what it needs, decide `done` (the database's
        answer: `Stored(row)` or `WriteFailed`) next, in the same turn."""
        before = self.state
        self.state, effects = decide(self.state, command, self.now)
        if self.ended:
            assert self.state is before and not any(isinstance(e, Write | Send) for e in effects)
        self._carry_out(effects)
        dancer_writes = [e for e in effects if isinstance(e, Write) and not e.feeds]
        if isinstance(command, c.Like | c.CastTempo | c.Thanks | c.PollVote) and dancer_writes:
            (write,) = dancer_writes  # one row per action: the group commit's unit
            self.uncommitted.append((command, write))
        if any(isinstance(e, Write) and e.feeds for e in effects):
            assert done is not None, f"{command} feeds a row"
            self.state, settled = decide(self.state, done, self.now)
            assert self.state.pending is None
            self._carry_out(settled)
            effects += settled
        return effects

    def _carry_out(self, effects: tuple[Effect, ...]) -> None:
        writes = [e for e in effects if isinstance(e, Write)]
        # a write that may refuse (returns no row) comes first: a batch has no savepoints
        assert not any(w.query.name in MAY_REFUSE for w in writes[1:])
        released = False
        for effect in effects:
            if isinstance(effect, Write):
                assert not released, "a frame of this decision went out before its write"
                self.stored.append(effect)
            elif isinstance(effect, Send):
                released = True
                self.sent.extend(effect.messages)
            elif isinstance(effect, SetTimer):
                self.timers[effect.name] = effect.at
            elif isinstance(effect, CancelTimer):
                self.timers.pop(effect.name, None)

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    # -- the DJ -----------------------------------------------------------------------------

    @rule(track=tracks, outcome=st.sampled_from(["stored", "ended elsewhere", "timeout"]))
    def broadcast(self, track: TrackInfo, outcome: str) -> None:
        same = self.playing is not None and self.playing.same_track(track)
        done = {
            "stored": c.Stored({"play_id": self._new_id()}),
            "ended elsewhere": c.Stored(None),  # an admin ended it in the database meanwhile
            "timeout": c.WriteFailed(),
        }[outcome]
        effects = self.run(c.BroadcastTrack(track), done)
        if same or self.ended:
            return
        refused = [e for e in effects if isinstance(e, Refuse)]
        if not refused and outcome == "stored":
            self.playing, self.votes = track, {}
            self.played.add(track.match_key)
            assert self.sent[-1]["type"] == "NOW_PLAYING"
            assert self.sent[-1]["track"]["title"] == track.title

    @rule()
    def stop(self) -> None:
        self.run(c.StopTrack())
        if not self.ended:
            self.playing, self.votes = None, {}
            assert self.sent[-1] == {"type": "TRACK_STOPPED", "sessionId": "s1"}

    @rule(duration=st.sampled_from([None, 5.0, 60.0]))
    def open_poll(self, duration: float | None) -> None:
        poll_id = self._new_id()
        effects = self.run(
            c.OpenPoll("Next?", ("a", "b"), duration), c.Stored({"id": poll_id, "started_at": _at(self.now)})
        )
        if self.ended:
            return
        if self.poll_id is not None:
            assert effects == (Refuse("A poll is already active"),)
        else:
            self.poll_id, self.ballots = poll_id, {}

    @rule(which=st.sampled_from(["active", "any", "other"]), status=st.sampled_from(["closed", "cancelled"]))
    def close_poll(self, which: str, status: str) -> None:
        target = {"active": self.poll_id, "any": None, "other": -1}[which]
        effects = self.run(c.ClosePoll(target, status))
        if self.ended:
            return
        if self.poll_id is None or which == "other":
            assert effects == (Refuse("Poll not found"),)
            return
        ended = self.sent[-1]
        assert ended["type"] == "POLL_ENDED" and ended["pollId"] == self.poll_id
        assert ended["totalVotes"] == len(self.ballots)
        counts = [list(self.ballots.values()).count(i) for i in range(2)]
        winner = -1 if status == "cancelled" or not self.ballots else counts.index(max(counts))
        assert (ended["results"], ended["winnerIndex"]) == (counts, winner)
        self.poll_id = None

    @rule(message=st.text(min_size=1, max_size=5), duration=st.sampled_from([None, 10.0]))
    def announce(self, message: str, duration: float | None) -> None:
        self.run(c.Announce(message, duration), c.Stored({"created_at": _at(self.now)}))
        if not self.ended:
            assert self.sent[-1]["type"] == "ANNOUNCEMENT_RECEIVED"

    @rule()
    def cancel_announcement(self) -> None:
        self.run(c.CancelAnnouncement())

    @rule(grace=st.sampled_from([5.0, 50.0]))
    def dj_left(self, grace: float) -> None:
        self.run(c.DjLeft(grace))

    @rule()
    def dj_back(self) -> None:
        self.run(c.DjBack("DJ"))

    @rule(expired=st.booleans())
    def end(self, expired: bool) -> None:
        self.run(c.EndSession("idle" if expired else "dj_ended", expired))
        if not self.ended:
            self._ended()
            assert {"type": "SESSION_ENDED", "sessionId": "s1"} in self.sent[-2:]

    def _ended(self) -> None:
        self.ended, self.poll_id = True, None

    # -- dancers ----------------------------------------------------------------------------

    @rule(client=clients, preference=st.sampled_from(["faster", "perfect", "slower", "clear"]))
    def tempo(self, client: str, preference: str) -> None:
        effects = self.run(c.CastTempo(client, preference))
        if self.ended:
            return
        if self.playing is None:
            assert effects == (Refuse("No track is playing"),)

    @rule(client=clients, track=tracks)
    def like(self, client: str, track: TrackInfo) -> None:
        effects = self.run(c.Like(client, track))
        if not self.ended:
            (write,) = effects  # the DJ hears of it once it is stored, not before
            assert isinstance(write, Write) and write.row

    @rule(client=clients, option=st.integers(-1, 2))
    def vote(self, client: str, option: int) -> None:
        poll_id = self.poll_id if self.poll_id is not None else 999
        effects = self.run(c.PollVote(client, poll_id, option))
        if self.ended:
            return
        refused = [e.reason for e in effects if isinstance(e, Refuse)]
        if self.poll_id is None:
            assert refused == [VoteRejected.ENDED]
        elif not 0 <= option < 2:
            assert refused in ([VoteRejected.INVALID_OPTION], [VoteRejected.ENDED])
        elif client in self.ballots:
            assert refused in ([VoteRejected.ALREADY_VOTED], [VoteRejected.ENDED])
        else:
            assert refused == []

    @precondition(lambda self: self.uncommitted)
    @rule(count=st.integers(1, 4))
    def commit_batch(self, count: int) -> None:
        """The group commit: the oldest actions, in decision order; the database may refuse a row."""
        batch, self.uncommitted = self.uncommitted[:count], self.uncommitted[count:]
        for action, write in batch:
            reason = self._database_refuses(action, write)
            done = c.Rejected(action, reason) if reason else c.Committed(action, write)
            before = self.state
            self.state, effects = decide(self.state, done, self.now)
            self._carry_out(effects)
            if reason:
                assert effects[-1] == Refuse(reason)
            elif not self.ended:
                self._committed(action, write, before)

    def _database_refuses(self, action: c.Command, write: Write) -> str | None:
        if isinstance(action, c.PollVote):
            key = (action.poll_id, action.client)
            if key in self.db_ballots:
                return VoteRejected.ALREADY_VOTED
            self.db_ballots.add(key)
        if isinstance(action, c.Like):
            key = (action.client, action.track.match_key)
            if action.track.match_key not in self.played:
                return "Track was not played in this session"
            if key in self.db_likes:
                return "Already liked this track"
            self.db_likes.add(key)
        return None

    def _committed(self, action: c.Command, write: Write, before: RoomState) -> None:
        if isinstance(action, c.Like):
            self.likes_accepted.append(action.client)
        elif isinstance(action, c.CastTempo):
            current = before.current
            if current is not None and current.play_id == write.params["play_id"]:
                if action.preference == "clear":
                    self.votes.pop(action.client, None)
                else:
                    self.votes[action.client] = action.preference
        elif isinstance(action, c.PollVote) and action.poll_id == self.poll_id:
            self.ballots[action.client] = action.option_index
            assert self.sent[-1]["type"] == "VOTE_CONFIRMED"
            assert self.sent[-1]["totalVotes"] == len(self.ballots)

    # -- time -------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([0.5, 4.0, 20.0, 70.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds
        while due := sorted((at, name) for name, at in self.timers.items() if at <= self.now):
            _, name = due[0]
            del self.timers[name]
            before = self.state
            self.run(c.TimerFired(name))
            if name == "poll" and before.poll is not None and before.poll.ended(self.now):
                assert self.state.poll is None and self.sent[-1]["type"] == "POLL_ENDED"
                self.poll_id = None
            if name == "announcement" and self.state.announcement is None and before.announcement is not None:
                assert self.sent[-1]["type"] == "ANNOUNCEMENT_CANCELLED"
            if name == "grace" and before.dj_away_since is not None and not before.ended:
                assert self.state.ended
                self._ended()

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def one_active_poll(self) -> None:
        state = self.state
        assert (state.poll.id if state.poll else None) == self.poll_id
        if state.poll is not None:
            assert dict(state.poll.ballots) == self.ballots

    @invariant()
    def latest_track_wins(self) -> None:
        current = self.state.current
        if not self.ended:
            assert (current.track.match_key if current else None) == (
                self.playing.match_key if self.playing else None
            )

    @invariant()
    def votes_reset_per_track(self) -> None:
        counts = self.state.tempo.counts(self.now, self.state.tempo_lapse)
        live = list(self.votes.values())
        if self.now - 1_000_000.0 < self.state.tempo_lapse:  # no vote has lapsed yet
            assert (counts.faster, counts.perfect, counts.slower) == tuple(
                live.count(p) for p in ("faster", "perfect", "slower")
            )
        else:
            assert counts.total <= len(live)

    @invariant()
    def ended_room_is_silent(self) -> None:
        assert self.state.ended == self.ended
        if self.ended:
            assert self.state.poll is None and self.state.announcement is None
            assert not self.timers

    @invariant()
    def dj_hears_likes_in_commit_order(self) -> None:
        heard = [m for m in self.sent if m["type"] == "LIKE_RECEIVED"]
        assert len(heard) == len(self.likes_accepted)

    @invariant()
    def database_order_is_decision_order(self) -> None:
        plays = [w for w in self.stored if w.query.name == "insert_played_track"]
        announced = [m for m in self.sent if m["type"] == "NOW_PLAYING"]
        assert len(announced) <= len(plays)  # every NOW_PLAYING had its row written before it


RoomMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestRoomCore = RoomMachine.TestCase


owners = st.one_of(st.none(), st.integers(1, 3))


@given(dj=owners, account=owners, key_ok=st.booleans(), elsewhere=st.booleans())
def test_a_live_session_is_resumed_only_by_its_owner(
    dj: int | None, account: int | None, key_ok: bool, elsewhere: bool
) -> None:
    refusal = resume_refusal(dj, account, key_ok, elsewhere)
    if account is not None and account != dj:
        assert refusal == NOT_AVAILABLE  # an account never takes another's (or an anonymous) session
    if dj is None and account is None and key_ok:
        assert refusal is None  # whoever holds the resumeKey takes an anonymous session back, always
    if dj is None and not key_ok and elsewhere:
        assert refusal is not None  # no keyless takeover while its DJ is connected
    if dj is not None and account == dj:
        assert refusal is None  # an account's DJ software and consoles move freely


@given(dj=owners, account=st.integers(1, 3))
def test_a_console_attaches_only_to_its_accounts_session(dj: int | None, account: int) -> None:
    assert (attach_refusal(dj, account) is None) == (dj == account)
