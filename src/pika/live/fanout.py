"""Where a room decision's frames go: the `Publisher` seam between the room shell and sockets.

`LocalFanOut` delivers to this process's connections (encoded once per message and audience,
never awaiting a member).  What reaches a room's audience, or everyone, is also handed to the
room's relay (live/relay.py) for the other processes' members.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pika.live.connection import Connection
from pika.live.core.effects import Audience, Send
from pika.live.room import Room


class Publisher(Protocol):
    def publish(self, room: Room, send: Send, sender: Connection | None) -> None:
        """Deliver `send.messages` to `send.audience` of `room` (`sender`: whose command it was)."""


class LocalFanOut:
    def __init__(self, broadcast_all: Callable[[dict[str, Any]], None]) -> None:
        self._broadcast_all = broadcast_all  # every connection of the process (discovery events)

    def publish(self, room: Room, send: Send, sender: Connection | None) -> None:
        audience = send.audience
        if audience is Audience.ROOM:
            room.publish(*send.messages)  # back to back, one write per member
        elif audience is Audience.DJ:
            for message in send.messages:
                room.to_dj(message)
        elif audience is Audience.SUBSCRIBERS:
            for message in send.messages:
                room.publish_subscribers(message)
        elif audience is Audience.EVERYONE:
            for message in send.messages:
                self._broadcast_all(message)
        elif sender is not None:
            for message in send.messages:
                sender.send_message(message)
