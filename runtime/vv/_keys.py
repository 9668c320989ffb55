"""Every Redis key and stream name that the runtime uses.

All keys of one service start with ``vv:{<app>.<component>}:``. The part in
braces is a Redis Cluster hash tag: the cluster hashes only the text between
the first ``{`` and the next ``}``, so every key of a service lands in one
slot and multi-key commands and Lua scripts work. Because the tag is the
first brace of every key, user data placed later in a key (a unique value, a
list name) can never move the key to another slot.

Build key names only here; other modules never format a key themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KEY_PREFIX", "ServiceKeys", "reply_key"]

KEY_PREFIX = "vv"


def reply_key(client_id: str) -> str:
    """List that receives the replies to every call made by one client.

    The key has a hash tag of its own, so in a cluster the replies of
    different clients spread over the slots.
    """
    return f"{KEY_PREFIX}:{{reply.{client_id}}}:replies"


@dataclass(frozen=True)
class ServiceKeys:
    """Key names of one service, ``<app>.<component>``."""

    app: str
    component: str

    @property
    def service_id(self) -> str:
        return f"{self.app}.{self.component}"

    @property
    def tag(self) -> str:
        """The hash tag, braces included, shared by every key of the service."""
        return "{" + self.service_id + "}"

    def key(self, *parts: str | int) -> str:
        """Join ``parts`` under the service's prefix: ``vv:{app.comp}:a:b``."""
        return ":".join([KEY_PREFIX, self.tag, *(str(part) for part in parts)])

    # --- transport: RPC and events -------------------------------------

    @property
    def requests(self) -> str:
        """Stream that every instance of the service reads requests from."""
        return self.key("requests")

    @property
    def events(self) -> str:
        """Stream of the events that the service emits."""
        return self.key("events")

    @property
    def dead_letters(self) -> str:
        """Stream of requests and events that failed delivery too often."""
        return self.key("dead")

    @property
    def group(self) -> str:
        """Consumer group through which every instance of this service reads.

        The same name serves for the request stream and, on another
        service's event stream, for this service's subscription.
        """
        return self.service_id

    # --- storage: records, lists and state -----------------------------

    def record(self, record_id: int) -> str:
        """Hash holding the hot copy of one record of the service's entity."""
        return self.key("record", record_id)

    def unique_index(self, field: str) -> str:
        """Hash from the comparison key of a unique field's value to the record id."""
        return self.key("unique", field)

    def stored_list(self, name: str) -> str:
        """Sorted set holding the hot copy of an append-only list, scored by position."""
        return self.key("list", name)

    def state(self, name: str) -> str:
        """Hash holding the hot copy of one state value."""
        return self.key("state", name)
