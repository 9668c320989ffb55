"""Users of the caffeine manager: sign-up, listing and lookup.

Passwords are stored as salted scrypt hashes in PostgreSQL only; no reply,
event or Redis copy carries them.
"""

from __future__ import annotations

from vv import Conflict, InvalidRequest, Service, rpc
from vv.storage import Entity, Field

SIGN_UP_FIELDS = ("login", "password", "email")
UNIQUE_FIELDS = ("login", "email")
PAGE_SIZE = 1000


class User(Service):
    """Owns the ``user`` records: login and email unique, password hashed."""

    entity = Entity(
        "user",
        {
            "login": Field(str, required=True, unique=True),
            "password": Field(str, required=True, hashed=True),
            "email": Field(str, required=True, unique=True),
        },
    )

    @rpc(http=["GET", "PUT"])
    async def request(
        self,
        user_id: int | None = None,
        *,
        login: str | None = None,
        password: str | None = None,
        email: str | None = None,
    ) -> dict:
        """Return user ``user_id`` (GET /user/<id>) or add a user (PUT /user) and return its id."""
        fields = {"login": login, "password": password, "email": email}
        if user_id is not None:
            given = [name for name, value in fields.items() if value is not None]
            if given:
                raise InvalidRequest(f"a user lookup takes no fields, got {', '.join(given)}; sign up with PUT /user")
            return await self.records.get(user_id)
        return await self._add(fields)

    @rpc(http=["GET"], name="list")
    async def list_users(self) -> dict:
        """Return every user, ordered by id, without passwords."""
        users: list[dict] = []
        while page := await self.records.list(after_id=users[-1]["id"] if users else 0, limit=PAGE_SIZE):
            users += page
        return {"users": users}

    async def _add(self, fields: dict[str, str | None]) -> dict:
        missing = [name for name in SIGN_UP_FIELDS if fields[name] in (None, "")]
        if missing:
            raise InvalidRequest(f"missing required fields: {', '.join(missing)}")
        for name, value in fields.items():
            if not isinstance(value, str):
                raise InvalidRequest(f"invalid {name}: expected a string, got {type(value).__name__}")
        if "@" not in fields["email"]:
            raise InvalidRequest(f"invalid email {fields['email']!r}: expected an address such as name@example.com")

        try:
            return {"id": await self.records.add(fields)}
        except Conflict as exc:
            raise await self._name_conflict(fields, exc) from exc

    async def _name_conflict(self, fields: dict[str, str | None], exc: Conflict) -> Conflict:
        """Build the 409 error naming the field whose value another user holds."""
        for name in UNIQUE_FIELDS:
            if await self.records.find(name, fields[name]) is not None:
                return Conflict(f"user already exists: {name} {fields[name]!r} is taken")
        # The other user was deleted after the insert failed; keep the storage's text.
        return Conflict(f"user already exists: {exc.text}")
