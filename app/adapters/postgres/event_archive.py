"""A month of the event store out to an encrypted file, and back (``checkout events archive`` and
``checkout events restore``; docs/operations.md, "The event store's lifecycle").

The file is the month's partition as PostgreSQL's CSV (``COPY``, every column as the database
writes it, in ``seq`` order, with a header), gzip-compressed, then encrypted exactly as the
backups are (scripts/backup/lib.sh: ``openssl enc`` AES-256-CBC, PBKDF2-SHA256, the same key
file), so an operator can read one without this code::

    openssl enc -d -aes-256-cbc -pbkdf2 -iter 10000 -md sha256 -pass file:KEY < FILE | gunzip

Archiving writes ``FILE.partial``, syncs it, reads it back and checks it against the partition
(events, first and last seq) before, in one transaction, the partition is detached and dropped,
the month recorded in ``event_store_archives`` with the file's SHA-256, and the file renamed to
its name. A failure at any step leaves the month where it was. Restoring checks the SHA-256,
loads the rows into a new table and attaches it as the month's partition: attaching fires no
insert trigger, so nothing is claimed or folded into the read models twice (their keys never
left ``event_store_keys``).

Synchronous (psycopg2 with ``COPY``, which aiopg lacks): it runs from the CLI only. Table names
in the statements are partition names made from a month (``partition_name``), never input.
"""

# ruff: noqa: S608

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any, Final

import psycopg2

from app.adapters.postgres.event_partitions import partition_name
from app.services.event_store_upkeep import add_months

OPENSSL: Final = shutil.which("openssl") or "openssl"
CIPHER: Final = ("-aes-256-cbc", "-pbkdf2", "-iter", "10000", "-md", "sha256")
# An old month's partition is not written to, but detaching one waits for every transaction on
# event_store, and the projection's wait behind it: give up rather than stall the projection.
LOCK_TIMEOUT: Final = "5s"
_CHUNK: Final = 1 << 20


class ArchiveError(Exception):
    """The month cannot be archived or restored; the message says why. Nothing was changed."""


@dataclass(frozen=True)
class ArchiveResult:
    month: date
    file: Path
    sha256: str
    events: int
    first_seq: int | None
    last_seq: int | None
    bytes: int


def archive_file(directory: Path, month: date) -> Path:
    return directory / f"event_store_{month:%Y-%m}.csv.gz.enc"


def archive_month(
    database_url: str, month: date, directory: Path, key_file: Path, operator: str
) -> ArchiveResult:
    """Archive ``month`` (retention is the caller's rule) into ``directory``."""
    name = partition_name(month)
    target = archive_file(directory, month)
    partial = target.with_name(target.name + ".partial")
    _check_key(key_file)
    directory.mkdir(parents=True, exist_ok=True)
    with _connection(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
        if not cur.fetchone()[0]:
            raise ArchiveError(f"no partition {name}: {month:%Y-%m} is archived or was never made")
        # SHARE: nothing can be added to or removed from the month while it is written out.
        cur.execute(f'LOCK TABLE "{name}" IN SHARE MODE')
        cur.execute(f'SELECT count(*), min(seq), max(seq) FROM "{name}"')
        events, first_seq, last_seq = cur.fetchone()
        with _encrypting(partial, key_file) as sink:
            cur.copy_expert(
                f'COPY (SELECT * FROM "{name}" ORDER BY seq) TO STDOUT WITH (FORMAT csv, HEADER)',
                sink,
            )
        _sync(partial)
        read_back = _read_back(partial, key_file)
        if read_back != (events, first_seq, last_seq):
            partial.unlink(missing_ok=True)
            raise ArchiveError(
                f"{partial} reads back as {read_back[0]} events"
                f" (seq {read_back[1]}..{read_back[2]}), not {events}"
                f" (seq {first_seq}..{last_seq}); the month was left in place"
            )
        digest = _sha256(partial)
        cur.execute("SET LOCAL lock_timeout = %s", (LOCK_TIMEOUT,))
        try:
            cur.execute(f'ALTER TABLE event_store DETACH PARTITION "{name}"')
        except psycopg2.errors.LockNotAvailable:
            partial.unlink(missing_ok=True)
            raise ArchiveError(
                "event_store was busy for longer than the lock timeout; try again"
            ) from None
        cur.execute(
            "INSERT INTO event_store_archives AS a (month, file, sha256, events, first_seq,"
            " last_seq, archived_by) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (month) DO UPDATE SET file = EXCLUDED.file, sha256 = EXCLUDED.sha256,"
            " events = EXCLUDED.events, first_seq = EXCLUDED.first_seq,"
            " last_seq = EXCLUDED.last_seq, archived_at = now(),"
            " archived_by = EXCLUDED.archived_by, restored_at = NULL",
            (month, str(target.resolve()), digest, events, first_seq, last_seq, operator),
        )
        cur.execute(f'DROP TABLE "{name}"')
        os.replace(partial, target)
        conn.commit()
    return ArchiveResult(month, target, digest, events, first_seq, last_seq, target.stat().st_size)


def restore_month(
    database_url: str, month: date, key_file: Path, file: Path | None = None
) -> ArchiveResult:
    """Bring an archived ``month`` back as its partition, from ``file`` or where it was put."""
    name = partition_name(month)
    _check_key(key_file)
    with _connection(database_url) as conn, conn.cursor() as cur:
        archived = _checked_archive(cur, month, file, key_file)
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
        if cur.fetchone()[0]:
            cur.execute(f'SELECT count(*) FROM "{name}"')
            if cur.fetchone()[0]:
                raise ArchiveError(f"{name} exists and holds events: not restoring over them")
            cur.execute(f'DROP TABLE "{name}"')  # an empty month made meanwhile
        cur.execute(
            f'CREATE TABLE "{name}" (LIKE event_store INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
        )
        with _decrypting(archived.file, key_file) as rows:
            cur.copy_expert(f'COPY "{name}" FROM STDIN WITH (FORMAT csv, HEADER)', rows)
        cur.execute(f'SELECT count(*), min(seq), max(seq) FROM "{name}"')
        if cur.fetchone() != (archived.events, archived.first_seq, archived.last_seq):
            raise ArchiveError(
                f"{archived.file} does not hold the {archived.events} events archived"
            )
        _attach(cur, name, month)
        cur.execute(
            "UPDATE event_store_archives SET restored_at = now() WHERE month = %s", (month,)
        )
        conn.commit()
    return archived


def _checked_archive(cur: Any, month: date, file: Path | None, key_file: Path) -> ArchiveResult:
    """The month's archive file as recorded, checked whole before the database is touched:
    its SHA-256, the key, the gzip stream, the events and their seq range."""
    cur.execute(
        "SELECT file, sha256, events, first_seq, last_seq, restored_at"
        " FROM event_store_archives WHERE month = %s FOR UPDATE",
        (month,),
    )
    row = cur.fetchone()
    if row is None:
        raise ArchiveError(f"{month:%Y-%m} was never archived")
    recorded_file, digest, events, first_seq, last_seq, restored_at = row
    if restored_at is not None:
        raise ArchiveError(f"{month:%Y-%m} was restored already, at {restored_at:%Y-%m-%d %H:%M}")
    source = file or Path(recorded_file)
    if not source.is_file():
        raise ArchiveError(f"no archive file at {source}: fetch it back, or give --file")
    if _sha256(source) != digest:
        raise ArchiveError(
            f"{source} is not the file archived for {month:%Y-%m} (its SHA-256 differs)"
        )
    if _read_back(source, key_file) != (events, first_seq, last_seq):
        raise ArchiveError(f"{source} does not hold the {events} events archived")
    return ArchiveResult(month, source, digest, events, first_seq, last_seq, source.stat().st_size)


def _attach(cur: Any, name: str, month: date) -> None:
    """Attach the loaded table as ``month``'s partition (no insert trigger fires)."""
    cur.execute("SET LOCAL lock_timeout = %s", (LOCK_TIMEOUT,))
    try:
        cur.execute(
            f'ALTER TABLE event_store ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)',
            (_utc_midnight(month), _utc_midnight(add_months(month, 1))),
        )
    except psycopg2.errors.LockNotAvailable:
        raise ArchiveError(
            "event_store was busy for longer than the lock timeout; try again"
        ) from None
    except psycopg2.errors.CheckViolation:
        raise ArchiveError(
            f"the default partition holds events recorded in {month:%Y-%m}: "
            "run `checkout events partitions` first"
        ) from None
    cur.execute(
        f'CREATE TRIGGER event_store_no_truncate BEFORE TRUNCATE ON "{name}"'
        " FOR EACH STATEMENT EXECUTE FUNCTION event_store_refuse_change()"
    )


# --- the file -----------------------------------------------------------------------------------


def _check_key(key_file: Path) -> None:
    try:
        if key_file.read_text().strip():
            return
    except OSError:
        pass
    raise ArchiveError(
        f"no readable encryption key at {key_file} (BACKUP_ENCRYPTION_KEY_FILE or --key-file)"
    )


@contextmanager
def _encrypting(path: Path, key_file: Path) -> Iterator[gzip.GzipFile]:
    """A binary stream that ends up gzip-compressed and encrypted in ``path``."""
    openssl = _openssl(key_file, "-e", "-salt", "-out", str(path), stdin=subprocess.PIPE)
    assert openssl.stdin is not None
    try:
        with gzip.GzipFile(fileobj=openssl.stdin, mode="wb") as compressed:
            yield compressed
    except BaseException:
        _finish(openssl, openssl.stdin)
        path.unlink(missing_ok=True)
        raise
    error = _finish(openssl, openssl.stdin)
    if openssl.returncode != 0:
        path.unlink(missing_ok=True)
        raise ArchiveError(f"openssl could not encrypt: {error.decode(errors='replace').strip()}")


@contextmanager
def _decrypting(path: Path, key_file: Path) -> Iterator[gzip.GzipFile]:
    """``path`` decrypted and decompressed, as a binary stream."""
    openssl = _openssl(key_file, "-d", "-in", str(path), stdout=subprocess.PIPE)
    assert openssl.stdout is not None
    try:
        with gzip.GzipFile(fileobj=openssl.stdout, mode="rb") as plain:
            yield plain
    except (OSError, EOFError) as exc:
        raise ArchiveError(f"{path} cannot be decrypted with {key_file}: {exc}") from None
    finally:
        error = _finish(openssl, openssl.stdout)
    if openssl.returncode != 0:
        raise ArchiveError(
            f"{path} cannot be decrypted with {key_file}: {error.decode(errors='replace').strip()}"
        )


def _openssl(key_file: Path, *args: str, **pipe: Any) -> subprocess.Popen[bytes]:
    """``openssl enc`` with the backups' cipher and key; its stderr kept for the error."""
    return subprocess.Popen(  # noqa: S603 - fixed arguments; the paths are the operator's
        [OPENSSL, "enc", *args, *CIPHER, "-pass", f"file:{key_file}"],
        stderr=subprocess.PIPE,
        **pipe,
    )


def _finish(openssl: subprocess.Popen[bytes], pipe: IO[bytes]) -> bytes:
    """Close our end of ``pipe``, wait for openssl to exit; what it said on stderr."""
    pipe.close()
    assert openssl.stderr is not None
    error = openssl.stderr.read()
    openssl.wait()
    return error


def _read_back(path: Path, key_file: Path) -> tuple[int, int | None, int | None]:
    """Events in an archive file, and its first and last seq (the last column)."""
    events, first, last = 0, None, None
    with _decrypting(path, key_file) as plain:
        reader = csv.reader(io.TextIOWrapper(plain, encoding="utf-8", newline=""))
        header = next(reader, None)
        if header is None or header[-1] != "seq":
            raise ArchiveError(f"{path} is not an event store archive (no header ending in seq)")
        for row in reader:
            seq = int(row[-1])
            first = seq if first is None else first
            last = seq
            events += 1
    return events, first, last


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _sync(path: Path) -> None:
    with path.open("rb") as file:
        os.fsync(file.fileno())
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextmanager
def _connection(database_url: str) -> Iterator[Any]:
    conn = psycopg2.connect(database_url)
    try:
        yield conn
    finally:
        conn.close()


def _utc_midnight(month: date) -> str:
    return f"{month:%Y-%m-%d} 00:00:00+00"
