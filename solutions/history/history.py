"""The chat's memory, handed out ready-made: its last messages in a SQLite file, written
by a thread of its own (docs/history.md#save-first).

app.py uses three things from here:

    history = History(path, keep=50, deliver=broadcast)
    history.load()        # at start: the file's last `keep` messages, oldest first
    history.add(payload)  # a chat message: saved, then deliver(payload) broadcasts it

Saved, then seen. The writer thread commits a message to the file and only then calls
`deliver`, so whatever anybody saw is in the file: a server killed at any moment, even
with SIGKILL, loses only messages nobody saw yet. Each message gets the id of its row,
so a page that is sent the history again can skip what it already shows. Everything
that queued up while the writer was busy goes in one transaction: a busy room costs a
commit per batch, not one per message.

Writes never block the room. add() only queues a message; the room's threads and its
event loop never touch the file. In WAL mode with synchronous=NORMAL a commit is a
write() into the -wal file, with no fsync: it survives the process, not a power cut.

A file that does not work (not a database, damaged, locked by another program, in a
folder that does not exist, a full disk) never stops the chat: the terminal gets one
line that says what to do, messages are delivered at once without being saved, and the
writer tries the file again every RETRY_SECONDS. What it could not save meanwhile (the
last `keep` messages) is saved as soon as the file works again.
"""

import collections
import os
import queue
import sqlite3
import sys
import threading
import time
from pathlib import Path

# How often a file that does not work is tried again (the checks set less).
RETRY_SECONDS = float(os.environ.get("CHAT_HISTORY_RETRY_SECONDS", "2"))
# How long one write waits for another program's lock before the writer gives up.
BUSY_TIMEOUT_SECONDS = 0.2


class History:
    def __init__(self, path, keep: int = 50, deliver=print):
        self.path = Path(path)
        self.keep = keep
        self.deliver = deliver
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._unsaved: collections.deque = collections.deque(maxlen=keep)
        self._db: sqlite3.Connection | None = None
        self._problem: str | None = None  # the last problem told, to tell each once
        self._retry_at = 0.0

    def load(self) -> list[dict]:
        """Open (or create) the file; return its last `keep` messages, oldest first ([]
        if the file does not work: the terminal says why). Starts the writer."""
        messages = []
        try:
            self._open()
            rows = self._db.execute(
                "SELECT id, username, message FROM messages ORDER BY id DESC LIMIT ?",
                (self.keep,),
            ).fetchall()
            messages = [
                {"type": "chat", "message": text, "username": name, "id": row_id}
                for row_id, name, text in reversed(rows)
            ]
        except (sqlite3.Error, OSError) as error:
            self._failed(error)
        writer = threading.Thread(target=self._write, name="chat-history", daemon=True)
        writer.start()
        return messages

    def add(self, payload: dict) -> None:
        """Queue a chat message to save, then deliver. Never blocks."""
        self._queue.put(payload)

    # --- the writer thread ------------------------------------------------------------

    def _open(self) -> None:
        self._close()
        # Opened here, then used by the writer thread alone.
        db = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
        )
        try:  # the first statement finds out whether the file is a database at all
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, "
                "at REAL NOT NULL, username TEXT NOT NULL, message TEXT NOT NULL)"
            )
        except sqlite3.Error:
            db.close()
            raise
        self._db = db

    def _close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    def _write(self) -> None:
        while True:
            # While the file does not work, wake up in time to try it again anyway.
            wait = RETRY_SECONDS if self._problem else None
            try:
                batch = [self._queue.get(timeout=wait)]
            except queue.Empty:
                batch = []
            while True:  # what queued up meanwhile goes in the same transaction
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if self._problem is None or time.monotonic() >= self._retry_at:
                try:
                    self._save(batch)
                    continue
                except Exception as error:  # the writer outlives anything
                    self._failed(error)
            for payload in batch:  # not saved: the room goes on meanwhile
                payload.pop("id", None)  # from a transaction that was rolled back
                self._unsaved.append(payload)
                self._deliver(payload)

    def _save(self, batch: list[dict]) -> None:
        """Commit what was left unsaved and the batch, then deliver the batch."""
        if not batch and not self._unsaved:
            return
        if self._db is None:
            self._open()
        db = self._db
        insert = "INSERT INTO messages (at, username, message) VALUES (?, ?, ?)"
        db.execute("BEGIN IMMEDIATE")
        try:
            for payload in self._unsaved:  # delivered already: they only need saving
                db.execute(
                    insert, (time.time(), payload["username"], payload["message"])
                )
            for payload in batch:
                row = (time.time(), payload["username"], payload["message"])
                payload["id"] = db.execute(insert, row).lastrowid
            db.execute(
                "DELETE FROM messages WHERE id <= (SELECT MAX(id) FROM messages) - ?",
                (self.keep,),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._unsaved.clear()
        if self._problem is not None:
            self._problem = None
            self._tell(f"{self.path} works again: messages are saved.")
        for payload in batch:  # saved: now the room may see them
            self._deliver(payload)

    def _deliver(self, payload: dict) -> None:
        try:
            self.deliver(payload)
        except Exception as error:  # noqa: BLE001 - one failed delivery stops nothing
            self._tell(f"delivering a message failed: {error!r}")

    # --- telling the person at the terminal -------------------------------------------

    def _failed(self, error: BaseException) -> None:
        """Note a problem, tell it once, and come back to the file later."""
        self._retry_at = time.monotonic() + RETRY_SECONDS
        self._close()  # reopened at the next try: the file may be replaced by then
        problem = f"{type(error).__name__}: {error}"
        if problem == self._problem:
            return
        self._problem = problem
        text = str(error)
        if "not a database" in text or "malformed" in text:
            advice = (
                "it is not a SQLite database, or it is damaged. Move it away (mv "
                f"{self.path.name} {self.path.name}.broken) and a new one starts at "
                "the next message"
            )
        elif "locked" in text or "busy" in text:
            advice = (
                "another program holds a lock on it (an sqlite3 shell in the middle "
                "of a transaction?)"
            )
        elif "unable to open" in text:
            advice = "it cannot be opened: does its folder exist, may this user write?"
        elif "full" in text:
            advice = "the disk is full"
        else:
            advice = problem
        self._tell(
            f"cannot use {self.path}: {advice}. The chat goes on, but messages are not "
            f"saved until this is fixed (trying again every {RETRY_SECONDS:g} s)."
        )

    def _tell(self, line: str) -> None:
        print(f"history: {line}", file=sys.stderr, flush=True)
