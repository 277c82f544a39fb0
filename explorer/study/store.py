"""Where a study lives: its Optuna storage, kept durable, and the trials' artifact folders.

Local studies use Optuna's journal file. Three things make it survive crashes:

- `JournalLock` replaces Optuna's symlink lock. It records its owner (host and process id) in the lock
  file, releases at once a lock whose owner process is gone (same host), and after a bounded wait one
  whose owner cannot be checked (another host, or a lock left by another tool); it always sleeps
  between attempts, so a stale lock never spins.
- `repair_journal` runs, under that lock, before a study is opened: a record cut by a crash (power loss,
  a full disk, a kill during a write) is moved aside into `study.journal.torn-N` and the journal ends on
  a whole line again, so nothing is ever appended to a partial line. A line that a crash merged with the
  next record keeps the whole record. Completed trials are never lost.
- `close_stale_trials`: a trial left RUNNING by a process that died is recorded as FAIL with the reason,
  so that it is neither lost nor counted twice; each trial records its worker (host, process id and
  the process's start time) when it starts. Its design point is asked again (`retry_stale`), and a trial
  whose worker died does not count toward n_trials (`counts_as_finished`).

Studies shared by many machines use a database (PostgreSQL): Optuna's schema is created under an advisory
lock (`_schema_lock`: workers started at once on a fresh database race otherwise), and running trials beat
(`beating`), so that a trial whose worker on another host died is failed once its beats stop
(`fail_stale`, Optuna's heartbeat_interval / grace_period) and retried like the above.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal._file import BaseJournalFileLock

from explorer.errors import ExplorerError
from explorer.study.record import FAIL_REASON

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)
LOCK_SUFFIX = ".lock"  # the same name as Optuna's own lock, so other Optuna clients exclude each other with us
STALE_LOCK_SECONDS = 30.0  # a lock whose owner cannot be checked is broken after this long unchanged
WORKER_ATTR = "worker"
NO_WORKER_GRACE_S = 300.0  # a RUNNING trial with no worker, while another worker may be alive: stale after this long
WORKER_MARK = "explorer_worker:"  # study system attribute of each process that works on the study (`mark_worker`)


def storage_file(storage: str) -> Path | None:
    """The local file of a journal or SQLite storage (None for a server)."""
    for prefix in ("journal:", "sqlite:///"):
        if storage.startswith(prefix):
            return Path(storage[len(prefix) :])
    return None


# -- who is working -------------------------------------------------------------------------------------
def _process_start(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


@dataclass(frozen=True)
class Worker:
    host: str
    pid: int
    start: str | None

    @classmethod
    def current(cls) -> Worker:
        return cls(socket.gethostname(), os.getpid(), _process_start(os.getpid()))

    @classmethod
    def from_dict(cls, data: Any) -> Worker | None:
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int) or not isinstance(data.get("host"), str):
            return None
        start = data.get("start")
        return cls(data["host"], data["pid"], start if isinstance(start, str) else None)

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "start": self.start}

    def alive(self) -> bool | None:
        """True or False on this host; None when it cannot be told (another host)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by another user
        start = _process_start(self.pid)
        return not (self.start is not None and start is not None and start != self.start)

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"


# -- the journal lock -----------------------------------------------------------------------------------
class JournalLock(BaseJournalFileLock):
    """An exclusive lock file that names its owner; a dead owner's lock is released (see the module doc)."""

    def __init__(self, journal: str, stale_after: float = STALE_LOCK_SECONDS) -> None:
        self.path = journal + LOCK_SUFFIX
        self.stale_after = stale_after
        self.owner = json.dumps(Worker.current().to_dict())

    def _identity(self, path: str) -> tuple[int, int, str] | None:
        """What tells one lock file from the next: inode and modification time (inodes are reused at once)
        and the content (the owner, or an Optuna symlink lock's target)."""
        try:
            st = os.lstat(path)  # lstat: a dangling symlink lock is still seen
            if stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            else:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    content = handle.read()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, content

    def _inspect(self) -> tuple[tuple[int, int, str], Worker | None] | None:
        """(identity, owner) of the lock file as it is now; None when there is none."""
        identity = self._identity(self.path)
        if identity is None:
            return None
        try:
            owner = Worker.from_dict(json.loads(identity[2]))
        except ValueError:
            owner = None  # an Optuna symlink lock, or a lock being written
        return identity, owner

    def _break(self, identity: tuple[int, int, str], why: str) -> bool:
        """Remove the stale lock judged by `identity`; True when this process removed it. Only one breaker's
        rename succeeds; one that finds it took a newer lock (another process broke the stale one and took
        the lock meanwhile) puts it back."""
        aside = f"{self.path}.{os.getpid()}.broken"
        try:
            os.rename(self.path, aside)
        except OSError:
            return False
        try:
            if self._identity(aside) != identity:
                with contextlib.suppress(OSError):
                    os.link(aside, self.path, follow_symlinks=False)  # restore it, unless a lock is there again
                return False
        finally:
            with contextlib.suppress(OSError):
                os.unlink(aside)
        print(f"note: released the lock {self.path}: {why}", file=sys.stderr)
        return True

    def acquire(self) -> bool:
        delay, seen, since = 0.001, None, time.monotonic()
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise ExplorerError(f"cannot create the journal lock {self.path}: {exc.strerror}") from None
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(self.owner)
                return True
            found = self._inspect()
            if found is not None:
                identity, owner = found
                if owner is not None and owner.alive() is False:
                    if self._break(identity, f"its owner, {owner}, is gone"):
                        continue
                elif identity != seen:
                    seen, since = identity, time.monotonic()
                elif time.monotonic() - since > self.stale_after:
                    why = f"unchanged for {self.stale_after:.0f} s and its owner cannot be checked ({owner or 'unknown'})"
                    if self._break(identity, why):
                        continue
            time.sleep(delay)  # every path that did not take or break the lock pauses: no spinning
            delay = min(delay * 2, 0.25)

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


@contextlib.contextmanager
def locked(journal: Path) -> Iterator[None]:
    lock = JournalLock(str(journal))
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


# -- torn records -----------------------------------------------------------------------------------------
def _valid_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _salvage(line: bytes) -> tuple[bytes | None, bytes]:
    """(the whole record at the end of a merged line or None, the torn bytes before it)."""
    start = line.find(b'{"op_code"', 1)
    while start > 0:
        if _valid_record(line[start:]):
            return line[start:], line[:start]
        start = line.find(b'{"op_code"', start + 1)
    return None, line


def repair_journal(path: Path) -> str | None:
    """Make the journal end on whole records; returns a note of what was moved aside (None: it was sound).

    Call with the journal lock held. What is cut goes to `PATH.torn-N`, never lost.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if not data:
        return None
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: empty when the file ends on a whole line
    kept: list[bytes] = []
    torn: list[bytes] = []
    for line in lines:
        if _valid_record(line):
            kept.append(line)
            continue
        record, cut = _salvage(line)
        torn.append(cut)
        if record is not None:
            kept.append(record)
    if tail:
        torn.append(tail)
    if not torn:
        return None
    n = 1
    while path.with_name(f"{path.name}.torn-{n}").exists():
        n += 1
    aside = path.with_name(f"{path.name}.torn-{n}")
    aside.write_bytes(b"\n".join(torn) + b"\n")
    fixed = path.with_name(f".{path.name}.{os.getpid()}.repair")
    with fixed.open("wb") as handle:
        handle.write(b"".join(line + b"\n" for line in kept))
        handle.flush()
        os.fsync(handle.fileno())
    fixed.replace(path)
    size = sum(len(t) for t in torn)
    return (
        f"the journal {path} ended in a record cut by a crash ({size} bytes); it was moved to {aside} "
        f"and the {len(kept)} whole records were kept"
    )


# -- opening ----------------------------------------------------------------------------------------------
def storage_for(storage: str) -> optuna.storages.BaseStorage | str:
    """The Optuna storage of a study's storage setting; a journal file is repaired first (see the module doc)."""
    path = storage_file(storage)
    if path is None or not storage.startswith("journal:"):
        return storage
    path = path.resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExplorerError(f"cannot create the folder of the journal {path}: {exc.strerror}") from None
    note = None
    if os.access(path.parent, os.W_OK):  # a read-only study is read as it is: Optuna skips a torn last line
        with locked(path):
            note = repair_journal(path)
    if note:
        print(f"note: {note}", file=sys.stderr)
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalLock(str(path))))


@dataclass(frozen=True)
class Heartbeat:
    """Worker heartbeats of a database storage (Optuna's heartbeat_interval / grace_period), and how often a
    trial whose worker died is retried."""

    interval: int = 60
    grace_period: int = 180
    max_retry: int = 3


SCHEMA_LOCK_KEY = 0x64707545_78706C72  # pg_advisory_lock key: "dpuExplr"; one schema creation at a time
QUEUE_LOCK_KEY = SCHEMA_LOCK_KEY + 1  # one worker at a time counts the trials left and queues proposals
QUEUE_LOCK_SUFFIX = ".queue"  # the journal's queue lock: STUDY.journal.queue.lock


def database_url(url: str) -> str:
    """SQLAlchemy's driver for a bare postgresql:// is psycopg2; with only psycopg 3 installed (the
    `postgres` extra), name it, so both spellings work."""
    import importlib.util

    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare) and importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
            return "postgresql+psycopg://" + url[len(bare) :]
    return url


@contextlib.contextmanager
def _advisory_lock(url: str, key: int) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock (nothing for other URLs)."""
    if not url.startswith(("postgresql", "postgres:")):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


def _schema_lock(url: str) -> contextlib.AbstractContextManager[None]:
    """Held while Optuna creates its schema: several workers started at once against a fresh database
    otherwise race on CREATE TYPE / CREATE TABLE and all but one fail."""
    return _advisory_lock(url, SCHEMA_LOCK_KEY)


def queue_lock(storage: str) -> contextlib.AbstractContextManager[None]:
    """Held by a worker while it counts the trials a study has left and queues trials into that room, so two
    workers that complete at once cannot both fill it (the study would end with queued trials never run): a
    lock file beside a journal, an advisory lock on PostgreSQL, nothing for SQLite (one worker only) or MySQL
    (not tested here: workers there may still, rarely, leave a queued trial for the next run)."""
    file = storage_file(storage)
    if file is not None and storage.startswith("journal:"):
        return locked(Path(str(file.resolve()) + QUEUE_LOCK_SUFFIX))
    return _advisory_lock(database_url(storage), QUEUE_LOCK_KEY)


def retry_stale(max_retry: int) -> Any:
    """A trial failed because its worker died is asked again with the same parameters, at most `max_retry`
    times for one design point. Optuna's RetryFailedTrialCallback does the same but also copies the dead
    trial's user attributes (its worker and failure reason) into the retry; this one starts it clean and
    keeps Optuna's `failed_trial` / `retry_history` system attributes, which optuna-dashboard shows."""

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if len(history) > max_retry or not trial.params:
            return
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                system_attrs={"failed_trial": trial.number, "retry_history": history},
            )
        )

    return callback


def _database_storage(url: str, heartbeat: Heartbeat | None) -> optuna.storages.BaseStorage:
    import inspect

    kwargs: dict[str, Any] = {}
    if heartbeat is not None:
        names = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
        stale = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in names else "failed_trial_callback"
        kwargs = {
            "heartbeat_interval": heartbeat.interval,
            "grace_period": heartbeat.grace_period,
            stale: retry_stale(heartbeat.max_retry),
        }
    import warnings

    with _schema_lock(url), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, **kwargs)


def open_storage(storage: str, heartbeat: Heartbeat | None = None) -> optuna.storages.BaseStorage | str:
    """`storage_for`, with a server storage opened and checked, so a bad URL or a missing driver is one clear
    message. `heartbeat`: a running worker's settings for a database storage (readers need none)."""
    opened = storage_for(storage)
    if isinstance(opened, str):
        url = database_url(opened)
        try:
            if url.startswith(("postgresql", "postgres:", "mysql")):
                return _database_storage(url, heartbeat)
            return optuna.storages.get_storage(url)
        except ImportError as exc:
            hint = " (pip install 'dpu-explorer[postgres]')" if url.startswith("postgres") else ""
            raise ExplorerError(f"storage {opened!r}: its database driver is not installed ({exc}){hint}") from None
        except Exception as exc:  # sqlalchemy's errors (bad URL, unreachable server) share no base we can import
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExplorerError(f"storage {opened!r} cannot be opened: {first}") from None
    return opened


@contextlib.contextmanager
def beating(study: optuna.Study, trial_id: int) -> Iterator[None]:
    """While a trial runs, beat for it every heartbeat interval (a storage with heartbeats enabled), so
    that other workers can tell it from a trial whose worker died. Optuna beats only inside
    study.optimize; the explorer asks and tells, so it beats here."""
    storage: Any = study._storage  # a database storage (possibly cached) has the heartbeat methods
    interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
    if not interval:
        yield
        return
    import threading

    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is retried at the next interval
                storage.record_heartbeat(trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def mark_worker(study: optuna.Study, me: Worker) -> None:
    """Mark `me` as a worker of the study (a study system attribute, WORKER_MARK + host:pid), once, before its
    first trial. Optuna creates a trial RUNNING before the sampler has drawn its relative parameters, so a process
    killed inside `ask` leaves a RUNNING trial that names no worker; such a trial can only be a marked worker's,
    and `close_stale_trials` closes it at once when no other marked worker may be alive."""
    study._storage.set_study_system_attr(study._study_id, f"{WORKER_MARK}{me.host}:{me.pid}", me.to_dict())


def ask(study: optuna.Study, me: Worker | None = None) -> optuna.Trial:
    """study.ask() with the worker recorded on the new trial (without Optuna's warning that heartbeats belong to
    study.optimize: `beating` beats). A worker marks itself first (`mark_worker`)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
        trial = study.ask()
    trial.set_user_attr(WORKER_ATTR, (me or Worker.current()).to_dict())
    return trial


def fail_stale(study: optuna.Study) -> None:
    """Fail the trials whose worker stopped beating (and retry them); nothing for storages without heartbeats."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def load_existing(study_name: str, storage: str) -> optuna.Study:
    """The study as stored, for reading (report, export); a clear error when it was never run."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    never_run = ExplorerError(f"study {study_name!r} has no trials yet in {storage}; run `explore run` first")
    file = storage_file(storage)
    if file is not None and not file.is_file():  # reading must not create the storage file (or its folder)
        raise never_run
    try:
        return optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:
        raise never_run from None


RETRIED_REASONS = ("interrupted", "left RUNNING")  # failures of the worker, not of the design point


def counts_as_finished(trial: optuna.trial.FrozenTrial) -> bool:
    """A trial that counts toward n_trials: complete, pruned, or failed because of its design point. A trial
    whose worker died or was interrupted does not (its design point was not judged): a rerun or a retry makes
    it up, so a killed worker costs at most the trial it was running."""
    if trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
        return True
    if trial.state != optuna.trial.TrialState.FAIL:
        return False
    reason = trial.user_attrs.get(FAIL_REASON)
    return isinstance(reason, str) and not reason.startswith(RETRIED_REASONS)  # no reason: failed by heartbeat


def finished_count(study: optuna.Study) -> int:
    return sum(counts_as_finished(t) for t in study.get_trials(deepcopy=False, states=FINISHED))


def close_stale_trials(study: optuna.Study, max_retry: int = 0) -> list[tuple[int, str]]:
    """Record RUNNING trials whose worker is gone as FAIL with the reason, and ask each again with the same
    parameters (up to `max_retry` times per design point); returns (number, reason) of each."""
    closed = []
    storage = study._storage
    now = time.time()
    me = Worker.current()
    marks = [Worker.from_dict(v) for k, v in storage.get_study_system_attrs(study._study_id).items() if k.startswith(WORKER_MARK)]
    others = any(w is not None and (w.host, w.pid) != (me.host, me.pid) and w.alive() is not False for w in marks)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = Worker.from_dict(trial.user_attrs.get(WORKER_ATTR))
        if worker is None:
            started = trial.datetime_start.timestamp() if trial.datetime_start else now
            if others and now - started < NO_WORKER_GRACE_S:
                continue  # another live worker may be about to record itself on it
            reason = f"left RUNNING without a recorded worker (its process died while asking for it, {now - started:.0f} s ago)"
        elif worker.alive() is False:
            reason = f"interrupted: its worker, {worker}, died (killed or crashed) while it ran"
        else:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, FAIL_REASON, reason)
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        except RuntimeError:
            continue  # another process closed it first
        if max_retry:
            retry_stale(max_retry)(study, storage.get_trial(trial._trial_id))
        closed.append((trial.number, reason))
    return closed


def trial_folder(output: Path, number: int) -> Path:
    """Where trial `number` keeps its artifacts (arch.json, metrics, measurements)."""
    return output / "trials" / f"{number:05d}"
