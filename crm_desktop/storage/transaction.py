"""One write transaction per thread, which every write of that thread joins.

``Database.transaction()`` opens the thread's write transaction (``BEGIN
IMMEDIATE`` on a connection of the write engine, one :class:`WriteSession`
bound to it) or, when one is open already, a nested scope in it (a
``SAVEPOINT``). So a service write inside an open unit of work, or a plugin's
``ctx.db`` session inside ``ctx.transaction()``, joins the transaction instead
of waiting for the lock its own thread holds ("database is locked"). A scope
that fails rolls back to its savepoint only; its caller decides what the
outer scope does.

Changes (:mod:`crm_desktop.storage.changes`) are recorded in the innermost
scope and handed to the change sinks (audit, sync outbox) in batches inside
the transaction: when the scope ends, or at once for a bulk insert. Callbacks
registered with :meth:`Scope.after_commit` (domain events) run only after the
outermost commit, and are dropped with a scope that rolls back.

A plugin's statements run under a SQLite authorizer that admits only its own
tables (:meth:`WriteTransaction.guarded`); core scopes always run unguarded.
"""

from __future__ import annotations

import logging
import sqlite3
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Sequence
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.orm import SessionTransaction

from crm_desktop.storage.dbapi import sqlite_connection
from crm_desktop.storage.changes import Change, ChangeLog, RecordedBatch, WriteSession

if TYPE_CHECKING:
    from crm_desktop.domain.actor import Actor
    from crm_desktop.storage.engine import Database

log = logging.getLogger(__name__)

#: called inside the transaction with a batch of changes: the audit log, the sync outbox
ChangeSink = Callable[[WriteSession, Sequence[RecordedBatch]], None]
Authorizer = Callable[..., int]


class Scope:
    """One ``with db.transaction():`` block: the outermost one is the transaction, inner ones savepoints."""

    def __init__(self, tx: "WriteTransaction", parent: "Scope | None", actor: "Actor | None",
                 audit_action: str | None, replicate: bool = True):
        self.tx = tx
        self.parent = parent
        self.actor: Actor | None = actor if actor is not None else (parent.actor if parent else None)
        self.audit_action: str | None = audit_action if audit_action is not None else (parent.audit_action if parent else None)
        #: False: the changes of this scope mirror the server (sync) and are not handed to the change
        #: listeners; an inner scope may not turn it back on (see :meth:`Database.transaction`)
        self.replicate: bool = replicate and (parent.replicate if parent else True)
        #: every change made in this scope (and in the inner scopes it kept), in order
        self.changes: ChangeLog = ChangeLog()
        self._undelivered: list[RecordedBatch] = []
        self._after_commit: list[Callable[[], None]] = []
        self._savepoint: SessionTransaction | None = None

    @property
    def session(self) -> WriteSession:
        return self.tx.session

    @property
    def connection(self) -> Connection:
        return self.tx.connection

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the outermost transaction committed (never if this scope rolls back)."""
        self._after_commit.append(callback)


class WriteTransaction:
    """The open write transaction of one thread (see the module docs)."""

    def __init__(self, db: "Database", connection: Connection, foreign_keys: bool = True):
        self.db = db
        self.connection = connection
        #: False while sync applies pulled pages (a record may arrive before the one it refers to,
        #: or refer to one outside this user's scope); switched back on in :meth:`close`
        self.foreign_keys = foreign_keys
        self.session = WriteSession(bind=connection, expire_on_commit=False, autoflush=True,
                                    info={"write_transaction": self})
        self.scopes: list[Scope] = []
        self._guards: list[Authorizer | None] = [None]
        self._after_end: list[Callable[[], None]] = []

    @property
    def scope(self) -> Scope:
        """The innermost open scope: new changes belong to it."""
        return self.scopes[-1]

    @property
    def dbapi_connection(self) -> sqlite3.Connection:
        """The sqlite3 connection, for bulk ``executemany`` inside this transaction."""
        return sqlite_connection(self.connection)

    def after_end(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the transaction is over, committed or rolled back (a denied-permission
        audit entry must be written even when the plugin's transaction rolls back)."""
        self._after_end.append(callback)

    # -- changes -------------------------------------------------------------------------

    def record(self, changes: Sequence[Change], *, audit_action: str | None = None,
               deliver: bool = False) -> None:
        """Add changes to the innermost scope; ``deliver``: hand them to the sinks now, as one batch."""
        if not changes:
            return
        scope = self.scope
        action = audit_action or scope.audit_action
        scope.changes.extend(changes)
        scope._undelivered.append(RecordedBatch(changes, scope.actor, action, scope.replicate))
        if deliver:
            self.deliver()

    def deliver(self) -> None:
        """Flush, then hand the innermost scope's undelivered batches to the sinks (in this transaction)."""
        scope = self.scope
        with self.guarded(None):
            for _ in range(10):  # a sink may add rows; their flush may record more (not for audit/outbox)
                self.session.flush()
                batch, scope._undelivered = scope._undelivered, []
                if not batch:
                    return
                for sink in list(self.db.change_sinks):
                    sink(self.session, batch)
            self.session.flush()

    # -- scopes ----------------------------------------------------------------------------

    def push(self, actor: "Actor | None", audit_action: str | None, replicate: bool = True) -> Scope:
        parent = self.scopes[-1] if self.scopes else None
        scope = Scope(self, parent, actor, audit_action, replicate)
        if parent is not None:
            with self.guarded(None):
                scope._savepoint = self.session.begin_nested()
        self.scopes.append(scope)
        return scope

    def end_nested(self, scope: Scope, ok: bool) -> None:
        """Release (ok) or roll back the savepoint of an inner scope; its work joins its parent."""
        assert scope is self.scope and scope.parent is not None
        savepoint = scope._savepoint
        assert savepoint is not None, "an inner scope has its savepoint (push)"
        try:
            if ok:
                try:
                    self.deliver()
                    with self.guarded(None):
                        savepoint.commit()
                except BaseException:
                    ok = False
                    raise
        finally:
            self.scopes.pop()
            if ok:
                scope.parent.changes.extend(scope.changes)
                scope.parent._after_commit.extend(scope._after_commit)
            else:
                with self.guarded(None):
                    if savepoint.is_active:
                        savepoint.rollback()

    def finish_outermost(self) -> list[Callable[[], None]]:
        """Deliver what is left and flush (before COMMIT); returns the after-commit callbacks."""
        self.deliver()
        return self.scope._after_commit

    # -- table guard -------------------------------------------------------------------------

    @contextmanager
    def guarded(self, authorizer: Authorizer | None) -> Iterator[None]:
        """Run the block with ``authorizer`` on the connection (None: the core, unguarded).

        Setting an authorizer makes SQLite re-prepare cached statements, so a statement the core
        prepared earlier is checked again before the plugin can reuse it.
        """
        previous = self._guards[-1]
        self._guards.append(authorizer)
        if authorizer is not previous:
            self.dbapi_connection.set_authorizer(authorizer)
        try:
            yield
        finally:
            self._guards.pop()
            if authorizer is not previous:
                self.dbapi_connection.set_authorizer(previous)

    def close(self, committed: bool) -> None:
        try:
            self.dbapi_connection.set_authorizer(None)  # the pooled connection goes back clean
            if not self.foreign_keys:
                self.dbapi_connection.execute("PRAGMA foreign_keys=ON")
        except Exception:  # a broken connection: the pool discards it anyway
            log.debug("clearing the authorizer failed", exc_info=True)
        self.connection.close()
        callbacks, self._after_end = self._after_end, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a callback after the write transaction (%s) failed",
                              "committed" if committed else "rolled back")


class TransactionScope:
    """The context manager behind ``Database.transaction()``: enters the thread's write transaction
    (opening it when none is open) and yields the :class:`Scope`."""

    def __init__(self, db: "Database", actor: "Actor | None", audit_action: str | None, *,
                 replicate: bool = True, foreign_keys: bool = True):
        self._db = db
        self._actor = actor
        self._audit_action = audit_action
        self._replicate = replicate
        self._foreign_keys = foreign_keys
        self._scope: Scope | None = None
        self._outermost = False
        self._guard: Any = None

    def __enter__(self) -> Scope:
        tx = self._db.current_transaction()
        if tx is None:
            connection = self._db.write_engine.connect()
            try:
                if not self._foreign_keys:  # a pragma that only takes effect outside a transaction
                    sqlite_connection(connection).execute("PRAGMA foreign_keys=OFF")
                connection.begin()  # BEGIN IMMEDIATE (engine.py): waits for another thread's writer
            except BaseException:
                if not self._foreign_keys:
                    sqlite_connection(connection).execute("PRAGMA foreign_keys=ON")
                connection.close()
                raise
            tx = WriteTransaction(self._db, connection, self._foreign_keys)
            self._db._local.transaction = tx
            self._outermost = True
        elif not self._foreign_keys and tx.foreign_keys:
            raise RuntimeError("foreign_keys=False needs its own transaction: one is open on this thread already")
        try:
            self._scope = tx.push(self._actor, self._audit_action, self._replicate)
        except BaseException:
            if self._outermost:
                self._abort(tx)
            raise
        # the scope's own work (core services) runs unguarded even inside a plugin's block
        self._guard = tx.guarded(None)
        self._guard.__enter__()
        return self._scope

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        scope = self._scope
        assert scope is not None
        tx = scope.tx
        self._guard.__exit__(None, None, None)
        if not self._outermost:
            tx.end_nested(scope, exc_type is None)
            return False
        if exc_type is not None:
            self._abort(tx)
            return False
        try:
            callbacks = tx.finish_outermost()
            tx.scopes.pop()
            tx.session.close()
            tx.connection.commit()
        except BaseException:
            self._abort(tx)
            raise
        self._db._local.transaction = None
        tx.close(committed=True)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("an after-commit callback failed")
        return False

    def _abort(self, tx: WriteTransaction) -> None:
        self._db._local.transaction = None
        tx.scopes.clear()
        try:
            tx.session.close()
            tx.connection.rollback()
        finally:
            tx.close(committed=False)
