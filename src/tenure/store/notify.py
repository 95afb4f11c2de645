"""Cross-process cache invalidation on PostgreSQL: ``NOTIFY tenure_ledger``.

Several ``tenure serve`` processes may append to one database. Each ledger writer
keeps projection rows in memory between batches; on SQLite ``PRAGMA data_version``
says when another connection committed, PostgreSQL has no such counter. So every
committed write batch sends ``pg_notify('tenure_ledger', '<sender> <account>')`` for
each account it touched, inside its transaction (PostgreSQL delivers a notification
only when, and if, its transaction commits), and each process runs one
``WriteListener``: a dedicated autocommit connection that ``LISTEN``s and moves a
marker whenever another process (or an out-of-band ``write_transaction``) wrote.

The marker is an optimization, not the guard: a notification arrives some time
after the commit it announces, so a batch may start before it does. The writer's
per-account advisory lock and its head check cover that window (see
``Ledger._open``); the marker only spares it the reload when nothing else wrote.
While the listener is not connected there is no marker (``None``) and the writer
reloads in every batch, as if every batch had been written elsewhere.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Iterable

import sqlalchemy as sa

from tenure.workers import Worker

_log = logging.getLogger("tenure.store")

CHANNEL = "tenure_ledger"
GENERATIONS = "tenure_read_generation"
"""Where the read-generation triggers (migration 0014) announce each account whose
rows a check reads changed, whoever changed them; ``*``: any account."""
ANYONE = "*"
"""The sender of a write that no listener made (rebuild, restore, accounts):
every listener counts it."""
POLL = 0.5
"""Seconds between checks of the stop flag while no notification arrives."""
RECONNECT = 1.0
"""Seconds to wait before reconnecting a listener that lost its connection."""

_ticks = itertools.count(1)
"""The one source of marker values: a value handed out once is never seen again,
so a marker from the listener never equals one handed out while it was down."""


def fresh_marker() -> int:
    """A marker value no caller has seen: "assume somebody else wrote"."""
    return next(_ticks)


def announce(conn: sa.Connection, sender: str, accounts: Iterable[str]) -> None:
    """Queue ``NOTIFY tenure_ledger`` for each of ``accounts`` in ``conn``'s
    transaction (PostgreSQL only; delivered when, and only if, it commits)."""
    payloads = sorted({f"{sender} {account}" for account in accounts})
    if not payloads or conn.dialect.name != "postgresql":
        return
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(
        "SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) AS payload", (CHANNEL, payloads)
    )
    cursor.close()


class WriteListener:
    """One process's ``LISTEN tenure_ledger`` on a connection of its own, run by a
    ``tenure.workers.Worker`` that reconnects after errors. ``marker()`` changes
    whenever a write by somebody other than ``sender`` was announced; it is None
    while not listening.

    It also listens to ``tenure_read_generation`` and keeps a read generation per
    account (``generation``): a value that changes with each announced change of
    the account's rows that checks read, and with each ``moved`` of this process's
    own writes (which it sees before their notifications come back)."""

    def __init__(self, conninfo: str) -> None:
        self.sender = secrets.token_hex(8)
        self._conninfo = conninfo
        self._marker: int | None = None
        self._generations: tuple[int, dict[str, int]] | None = None
        """(the value of every account not named, the accounts named): replaced
        whole, so that a reader never sees half of an update; None while not
        listening."""
        self._moving = threading.Lock()
        self._stop = threading.Event()
        self._worker: Worker | None = None

    def start(self) -> WriteListener:
        import psycopg  # only PostgreSQL stores listen; SQLite-only commands skip the import

        # One run listens until the connection fails (logged, and after RECONNECT
        # seconds the next run reconnects) or until stop; the first runs at once.
        self._worker = Worker(
            "tenure-listen",
            self._listen,
            RECONNECT,
            retry=(psycopg.Error,),
            log_level=logging.WARNING,
            logger=_log,
            what=f"LISTEN {CHANNEL} (reconnecting)",
        )
        self._worker.start().wake()
        return self

    def stop(self) -> None:
        self._stop.set()  # ends the run in progress at its next poll
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self._marker = None
        with self._moving:
            self._generations = None

    def marker(self) -> int | None:
        """The current marker, or None when the listener is not connected (then
        nothing is known about other writers)."""
        return self._marker

    def generation(self, account: str) -> int | None:
        """``account``'s read generation here, or None when not listening (then
        nothing is known: read the counter in the database)."""
        found = self._generations
        if found is None:
            return None
        base, named = found
        return named.get(account, base)

    def moved(self, accounts: Iterable[str] | None) -> None:
        """The rows of ``accounts`` (None: of any account) that checks read changed:
        give them new generations now."""
        with self._moving:  # the writer and the listening thread both move them
            found = self._generations
            if found is None:
                return
            if accounts is None:
                self._generations = (fresh_marker(), {})
                return
            base, named = found
            self._generations = (base, {**named, **{a: fresh_marker() for a in accounts}})

    def wait_until_listening(self, timeout: float) -> bool:
        """Whether the listener is connected, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self._marker is None and time.monotonic() < deadline:
            if self._stop.wait(0.01):
                break
        return self._marker is not None

    def _listen(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                conn.execute(f"LISTEN {GENERATIONS}")
                # Writes committed before LISTEN were never announced to us: new values.
                self._marker = fresh_marker()
                with self._moving:
                    self._generations = (fresh_marker(), {})
                own = self.sender + " "
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=POLL):
                        if note.channel == GENERATIONS:
                            self.moved(None if note.payload == "*" else [note.payload])
                        elif not note.payload.startswith(own):
                            self._marker = fresh_marker()
        finally:
            # Down (or dead of a bug): writers reload in every batch, and checks read
            # the generations in the database, until it is back.
            self._marker = None
            with self._moving:  # never revived by a ``moved`` that read them before
                self._generations = None


_listeners: weakref.WeakKeyDictionary[sa.Engine, WriteListener] = weakref.WeakKeyDictionary()


def start_listener(engine: sa.Engine) -> WriteListener | None:
    """Start a listener for ``engine`` and make it the one ``listener_of`` answers
    (PostgreSQL only; None on SQLite). Stop it with ``stop_listener``."""
    if engine.dialect.name != "postgresql":
        return None
    url = engine.url.set(drivername="postgresql")
    listener = _listeners[engine] = WriteListener(url.render_as_string(hide_password=False))
    return listener.start()


def stop_listener(engine: sa.Engine, listener: WriteListener) -> None:
    """Stop ``listener``; ``engine`` has none from then on unless another was started."""
    if _listeners.get(engine) is listener:
        del _listeners[engine]
    listener.stop()


def listener_of(engine: sa.Engine) -> WriteListener | None:
    """The listener started last for ``engine``, if it is still running."""
    return _listeners.get(engine)
