"""The admin channel: what `python -m pika.admin` does reaches the running server.

The CLI records an action in `admin_actions` and sends `NOTIFY pika_admin`; the server keeps one
dedicated connection LISTENing (waited on by trio, no thread) and, at start, on each notification
and after every reconnect, carries out the pending rows through the hub and marks each done.  A
notification sent while no server listened is therefore found in the table at the next start.
With several server processes (serve --workers N, several hosts) each one LISTENs and carries
out every action for its own connections and rooms, following the actions by id: one process
marking an action done does not keep it from the others.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import trio

from pika.audit import audit
from pika.db import DatabaseStalled, Row, Tx
from pika.live.hub import Hub
from pika.queries import query

log = logging.getLogger("pika.admin_channel")

RETRY_EVERY = 1.0  # s between attempts while the database is away or an action could not be done

ADMIN_LISTEN = query("admin_listen")
ADMIN_PENDING_ACTIONS = query("admin_pending_actions")
ADMIN_ACTION_DONE = query("admin_action_done")
ADMIN_ACTIONS_AFTER = query("admin_actions_after")
ADMIN_LAST_ACTION = query("admin_last_action")


class AdminChannel:
    def __init__(self, url: str, hub: Hub) -> None:
        self.url = url
        self.hub = hub
        self.followed: int | None = None  # the newest action id this process has carried out

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """LISTEN, carry out what is pending, then wait for notifications; reconnect when the
        database goes away.  Reports started once the actions pending at start are done (or the
        database could not be reached: they are then done as soon as it can)."""
        started = False
        while True:
            conn: psycopg.Connection[Any] | None = None
            try:
                conn = await trio.to_thread.run_sync(self._listen)
                await self._carry_out_pending()
                if not started:
                    task_status.started()
                    started = True
                await self._wait_for_notifications(conn)
            except (psycopg.OperationalError, DatabaseStalled) as exc:
                log.warning("admin channel: database unavailable, retrying", extra={"fields": {"error": exc}})
            except Exception:
                log.exception("admin channel: an action failed, retrying")
            finally:
                if conn is not None:
                    conn.close()
            if not started:
                task_status.started()
                started = True
            await trio.sleep(RETRY_EVERY)

    def _listen(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        conn.execute(self.hub.db.queries[ADMIN_LISTEN])
        return conn

    async def _wait_for_notifications(self, conn: psycopg.Connection[Any]) -> None:
        while True:
            await trio.lowlevel.wait_readable(conn.fileno())
            # Readable: notifications arrived (or the server closed the socket, which raises here).
            if list(conn.notifies(timeout=0)):
                await self._carry_out_pending()

    async def _carry_out_pending(self) -> None:
        """At start: the actions no process has done; then every action after the last followed."""
        if self.followed is None:
            actions, last = await self.hub.db.run(_pending_and_last)
        else:
            actions, last = await self.hub.db.all(ADMIN_ACTIONS_AFTER, after=self.followed), self.followed
        for action in actions:
            await self._carry_out(action)
            await self.hub.db.run(lambda tx, id=action["id"]: _done(tx, id))
            self.followed = max(self.followed or 0, action["id"])
        self.followed = max(self.followed or 0, last)

    async def _carry_out(self, action: Row) -> None:
        """Do one action (reset-password needs nothing of the server) and write its audit line."""
        fields: dict[str, object] = {"action": action["action"], "action_id": action["id"]}
        if action["action"] == "end_session":
            room = self.hub.rooms.get(action["session_id"])
            if room is not None:
                async with room.turn:  # after the DJ's command in progress
                    await self.hub.end_session(room, "admin")
            # else live on another process: its SESSION_ENDED reaches these connections by the relay
            fields.update(session=action["session_id"], was_live=room is not None)
        elif action["action"] == "revoke_tokens":
            fields.update(closed=self.hub.tokens_revoked(action["dj_id"]))
        audit("admin_action", ip=None, account=action["dj_id"], **fields)


def _pending_and_last(tx: Tx) -> tuple[list[Row], int]:
    last = tx.one(ADMIN_LAST_ACTION)
    assert last is not None
    return tx.all(ADMIN_PENDING_ACTIONS), last["last"]


def _done(tx: Tx, action_id: int) -> None:
    tx.execute(ADMIN_ACTION_DONE, id=action_id)
