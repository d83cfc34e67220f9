"""A venue behind one address after a server restart (PROTOCOL.md §1 connection limits).

2,000 phones share 127.0.0.1, as a venue's Wi-Fi NAT makes them share one public IP.  They
behave as the dancer page does: reconnect after the 1012 close with backoff and jitter, never
sooner than a 429's `Retry-After`.  With default settings every one gets back in, none refused
while the reopening lasts, and one host churning connections is still refused.  How long it took
is printed (`-s`), not asserted: speed is the benchmarks' business, not a test's.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from pika.backoff import parse_retry_after, reconnect_delay
from pika.config import Settings
from pika.server import serve
from tests import rawws
from tests.conftest import test_settings
from tests.procs import ServerProcess, free_port

PHONES = 2000
#: After a start, an address may open its open-connection cap (3,000) before the rate counts.
REOPENING = Settings().ws_reopen_seconds


@dataclass
class Venue:
    """What the phones saw: when each got back, every refusal (its time and headers), and how
    long after a refusal's `Retry-After` had run out each refused phone tried again."""

    url: str
    connected: int = 0
    everyone_in: trio.Event = field(default_factory=trio.Event)
    refusals: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    retried_after_wait: list[float] = field(default_factory=list)  # < 0: sooner than told
    back_at: list[float] = field(default_factory=list)
    everyone_back: trio.Event = field(default_factory=trio.Event)

    async def phone(self) -> None:
        """Connect, stay until the server closes the socket, connect again and stay."""
        stream = await self._connect()
        self.connected += 1
        if self.connected == PHONES:
            self.everyone_in.set()
        while await stream.receive_some(4096):  # the 1012 close frame, then EOF
            pass
        await stream.aclose()
        stream = await self._connect()
        self.back_at.append(time.monotonic())
        if len(self.back_at) == PHONES:
            self.everyone_back.set()
        await trio.sleep_forever()  # hold the socket open, as a phone in a pocket does

    async def _connect(self) -> trio.SocketStream:
        failures = 0
        come_back_at = None  # when the last refusal's Retry-After runs out
        while True:
            if come_back_at is not None:
                self.retried_after_wait.append(time.monotonic() - come_back_at)
            retry_after = come_back_at = None
            try:
                answer = await rawws.upgrade(self.url)
            except (OSError, EOFError):  # the server is down or restarting
                pass
            else:
                if answer.status == 101:
                    return answer.stream
                await answer.stream.aclose()
                refused_at = time.monotonic()
                said = {"status": str(answer.status), "body": answer.body.decode()}
                self.refusals.append((refused_at, answer.headers | said))
                retry_after = parse_retry_after(answer.headers.get("retry-after"))
                if retry_after is not None:
                    come_back_at = refused_at + retry_after
            failures += 1
            await trio.sleep(reconnect_delay(failures, retry_after))


async def test_a_venue_of_2000_phones_on_one_address_all_get_back_in_after_a_restart(
    db_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {"PIKA_DATABASE_URL": db_url}  # every limit at its default
    started = [time.monotonic()]  # before each server process starts: its reopening is later
    server = await ServerProcess.start(env, port, tmp_path / "server.log")
    venue = Venue(server.url)
    try:
        async with trio.open_nursery() as phones:
            for _ in range(PHONES):
                phones.start_soon(venue.phone)
            with trio.fail_after(120):
                await venue.everyone_in.wait()
            assert await server.stop(signal.SIGTERM) == 0
            started.append(time.monotonic())
            server = ServerProcess(env, port, tmp_path / "server.log")
            with trio.fail_after(300):  # a hang guard only, however loaded the host
                await venue.everyone_back.wait()
            phones.cancel_scope.cancel()
    finally:
        await server.stop()

    took = max(venue.back_at) - started[-1]
    print(f"{PHONES} phones back {took:.1f} s after the restart; {len(venue.refusals)} refusals")
    assert len(venue.back_at) == PHONES  # every phone got back in
    # None refused while a server's reopening lasted (it admits 3,000 from one address); a phone
    # refused after it, on a host too slow to bring them all back by then, was told when to come
    # back (Retry-After, with the reason in JSON) and came back no sooner.
    in_reopening = [r for at, r in venue.refusals if any(0 <= at - s < REOPENING for s in started)]
    assert in_reopening == []
    assert all("retry-after" in r and json.loads(r["body"])["error"] for _, r in venue.refusals)
    assert all(waited >= 0 for waited in venue.retried_after_wait)


async def test_one_host_churning_connections_after_a_start_is_refused_with_retry_after(
    nursery: trio.Nursery, db_url: str
) -> None:
    settings = test_settings(db_url, ws_open_per_ip=20, ws_connects_per_ip=5, ws_connects_window=60)
    running = await nursery.start(serve, settings)
    with trio.fail_after(20):
        answers = await rawws.churn(running.url, 40)
    statuses = [(a.status, a.headers.get("retry-after")) for a in answers]

    # The reopening's allowance (the open cap) and one window's rate, then nothing.
    assert [s for s, _ in statuses] == [101] * 25 + [429] * 15
    assert all(retry is not None and 1 <= int(retry) <= 60 for _, retry in statuses[25:])
