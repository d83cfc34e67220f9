"""The flooder of `flood`: one dancer (its own clientId) sending SEND_LIKE far over its limit.

It subscribes like any dancer, then at the coordinator's moment sends `rate` likes a second for
`seconds` (paced by the clock, not by answers: a client that floods does not wait), each with a
messageId, alternating between tracks already played.  Every ACK or NACK is matched to its
send; NOW_PLAYING frames are only counted (its own fan-out is not the one measured).  Runs in its
own process (side.py) so that its frames cost neither a dancer worker nor the DJ's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from loadtest.client import OPEN, WsClient
from loadtest.loop import READ, Loop

PACE_EVERY = 0.002  # s between pacing timers; each sends whatever is due by then
DRAIN_TIMEOUT = 15.0  # after the last send, answers still missing after this are given up on
SUBSCRIBE_TIMEOUT = 20.0


@dataclass
class FloodRecord:
    """What the flooder did and saw; wall-clock seconds; picklable."""

    client_id: str
    t_subscribed: float | None = None
    t_first: float | None = None  # first flood send
    t_last: float | None = None  # last flood send
    sends: list[float] = field(default_factory=list)  # t_send of message k (messageId F{k})
    answers: dict[int, tuple[float, str | None]] = field(default_factory=dict)  # k -> (t, error)
    now_playing: int = 0
    errors: int = 0  # ERROR frames (no messageId could be read)
    t_closed: float | None = None
    close_code: int | None = None
    closed_by_server: bool = False
    close_error: str | None = None

    def answer_rows(self) -> list[tuple[float, float | None, str | None]]:
        """(t_send, t_answer or None, error) per flood message."""
        rows = []
        for k, t_send in enumerate(self.sends):
            got = self.answers.get(k)
            rows.append((t_send, got[0], got[1]) if got else (t_send, None, None))
        return rows


class Flooder:
    """The flooding dancer on a `Loop` (a loadtest.client.Peer)."""

    def __init__(self, loop: Loop, host: str, port: int, session: str, client_id: str) -> None:
        self.loop = loop
        self.session = session
        self.rec = FloodRecord(client_id)
        self.client = WsClient(loop, host, port, self)
        self._frames: list[bytes] = []
        self._start = 0.0
        self._total = 0
        self._rate = 0.0

    @property
    def is_open(self) -> bool:
        return self.client.state == OPEN

    @property
    def flooding(self) -> bool:
        return len(self.rec.sends) < self._total and self.is_open

    @property
    def unanswered(self) -> int:
        return len(self.rec.sends) - len(self.rec.answers)

    def start(self) -> None:
        self.client.connect()

    def flood(self, start_at: float, seconds: float, rate: float, tracks: list[dict[str, str]]) -> None:
        """From monotonic `start_at`: `rate` likes/s for `seconds`, track k % len(tracks) for like k."""
        self._frames = [
            json.dumps(
                {"type": "SEND_LIKE", "sessionId": self.session, "payload": {"track": track}},
                separators=(",", ":"),
            )[:-1].encode()
            for track in tracks
        ]
        self._start, self._rate = start_at, rate
        self._total = max(1, round(seconds * rate))
        self.loop.call_at(start_at, self._pace)

    def _pace(self) -> None:
        if not self.flooding:
            return
        due = min(self._total, int((time.monotonic() - self._start) * self._rate) + 1)
        sends = self.rec.sends
        while len(sends) < due and self.is_open:
            k = len(sends)
            head = self._frames[k % len(self._frames)]
            now = time.time()
            sends.append(now)
            if self.rec.t_first is None:
                self.rec.t_first = now
            self.rec.t_last = now
            self.client.send_text((head + b',"messageId":"F%d"}' % k).decode())
        if self.flooding:
            self.loop.call_later(PACE_EVERY, self._pace)

    def close(self) -> None:
        self.client.close(1000)

    # -- Peer ----------------------------------------------------------------------------------

    def on_open(self, now: float) -> None:
        message = {"type": "SUBSCRIBE", "sessionId": self.session, "clientId": self.rec.client_id}
        self.client.send_text(json.dumps({**message, "messageId": "sub"}, separators=(",", ":")))

    def on_text(self, payload: bytes, now: float) -> None:
        msg = json.loads(payload)
        kind = msg.get("type")
        if kind in ("ACK", "NACK"):
            message_id = str(msg.get("messageId", ""))
            error = None if kind == "ACK" else str(msg.get("error", "NACK without error"))
            if message_id == "sub":
                if error is None:
                    self.rec.t_subscribed = now
                else:
                    self.rec.close_error = f"SUBSCRIBE refused: {error}"
            elif message_id.startswith("F") and message_id[1:].isdigit():
                self.rec.answers.setdefault(int(message_id[1:]), (now, error))
        elif kind == "NOW_PLAYING":
            self.rec.now_playing += 1
        elif kind == "ERROR":
            self.rec.errors += 1

    def on_closed(self, code: int, by_server: bool, error: str | None, now: float) -> None:
        rec = self.rec
        rec.t_closed, rec.close_code, rec.closed_by_server = now, code, by_server
        rec.close_error = rec.close_error or error


def flood_main(args: dict[str, Any], pipe: Connection) -> None:
    """The side process: subscribe → 'ready'; 'flood' → 'flooded' once answered; 'results' → record."""
    loop = Loop()
    flooder = Flooder(loop, args["host"], args["port"], args["session"], args["client_id"])
    deadline = time.monotonic() + args["max_seconds"]
    state = {"stop": False}

    def subscribed() -> dict[str, Any]:
        return {"subscribed": flooder.rec.t_subscribed is not None, "error": flooder.rec.close_error}

    def on_pipe(events: int) -> None:
        while not state["stop"] and pipe.poll():
            try:
                name, cmd = pipe.recv()
            except EOFError:
                state["stop"] = True
                return
            if name == "flood":
                flooder.flood(cmd["start_at"], cmd["seconds"], cmd["rate"], cmd["tracks"])
                last = cmd["start_at"] + cmd["seconds"]
                _when(
                    lambda: not flooder.flooding and (flooder.unanswered == 0 or not flooder.is_open),
                    last + DRAIN_TIMEOUT,
                    "flooded",
                )
            elif name == "results":
                pipe.send(("results", {"record": flooder.rec, "open_at_end": flooder.is_open}))
                flooder.close()
            elif name == "stop":
                state["stop"] = True

    def _when(done: Any, until: float, reply: str) -> None:
        def check() -> None:
            if done() or time.monotonic() >= until:
                pipe.send((reply, {"open": flooder.is_open, "unanswered": flooder.unanswered}))
            else:
                loop.call_later(0.05, check)

        check()

    loop.add(pipe.fileno(), READ, on_pipe)
    flooder.start()
    ready_by = time.monotonic() + SUBSCRIBE_TIMEOUT
    loop.run_until(
        lambda: (
            flooder.rec.t_subscribed is not None
            or flooder.rec.t_closed is not None
            or flooder.rec.close_error is not None
        ),
        ready_by,
        tick=0.05,
    )
    pipe.send(("ready", subscribed()))
    while not state["stop"] and time.monotonic() < deadline:
        loop.run_once(0.25)
    loop.run_until(lambda: False, time.monotonic() + 0.3, tick=0.05)  # let the close handshake finish
