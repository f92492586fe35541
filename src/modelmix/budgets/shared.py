"""Counters shared by every gateway process on one host: a memory-mapped file beside the ledger.

``modelmix serve --workers N`` runs N processes on one ledger; budgets and rate limits must hold
across all of them, yet the request path must not touch a database. So spend counters and
rate-limit buckets live in a small file mapped into every process's memory
(``<ledger>.counters``): an operation is a lock, a few reads and writes of the mapped bytes and
an unlock, a couple of microseconds, with no I/O (the kernel keeps the pages in memory; nothing
is flushed to disk on the request path).

Layout: a 64-byte header (magic, version, slot count), then ``slots`` fixed-size slots in an
open-addressing hash table (linear probing). A slot is a 16-byte digest of its counter's key
(first byte never 0; all zeros = empty), three 8-byte values and an 8-byte expiry (unix or
monotonic seconds, as the caller uses): spend counters hold ``spent`` and ``reserved`` as
integers in units of 1e-10 USD, buckets hold ``level``, ``updated`` and ``capacity`` as
floats. When the table is full, expired slots are dropped and the table is rebuilt.

Locking: every operation holds ``flock(LOCK_EX)`` on the counters file (between processes) and a
``threading.Lock`` (between threads of one process, which share a ``flock``).

Lifetime: each process holds a shared ``flock`` on ``<ledger>.counters.live`` for as long as
it uses the table. A process that starts while no other one holds it (it gets the lock
exclusively) starts a fresh table, which the budgets then seed from the ledger: so counters
survive a worker restarting beside the others, and a cold start rebuilds them from the ledger
(the source of truth) rather than trusting a file a crash may have left with reservations that
will never be settled. A crashed worker's in-flight reservations (a few estimates) stay held
until every process on that ledger has restarted.

Needs a local filesystem (``flock`` over NFS is not reliable).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from modelmix.budgets.limits import refill, wait_for
from modelmix.budgets.store import MISSING, CounterKey, first_over

__all__ = ["SharedBucketStore", "SharedSpendStore", "SharedTable", "TableFull"]

MAGIC = b"MMCNTRS1"
VERSION = 1
HEADER = struct.Struct("<8sII48x")  # magic, version, slots; 64 bytes
SLOT = 48
_DIGEST = 16
_INTS = struct.Struct("<qq")
_FLOATS = struct.Struct("<ddd")
_EXPIRES = struct.Struct("<d")
_EMPTY = bytes(_DIGEST)

#: Money unit in the table: 1e-10 USD, exact for any price down to 0.0001 USD per million
#: tokens; an int64 holds up to about 922 million USD per counter.
_UNIT = Decimal("1e10")
_I64 = 2**63 - 1
_ZERO_USD = Decimal(0)


class TableFull(RuntimeError):
    """Every slot holds a live counter: raise ``budgets.shared_slots``."""


def _digest(kind: str, key: tuple[Any, ...]) -> bytes:
    d = hashlib.blake2b(repr((kind, key)).encode(), digest_size=_DIGEST).digest()
    return d if d[0] else b"\x01" + d[1:]


class SharedTable:
    """The mapped file and its locks; see the module docstring."""

    def __init__(self, path: str | Path, slots: int = 65536) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.Lock()
        self._live_fd = os.open(f"{self.path}.live", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fresh = self._join()
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if fresh:
                    self._create(slots)
                self.slots = self._check_header()
                self._mm = mmap.mmap(self._fd, HEADER.size + self.slots * SLOT)
            except BaseException:
                os.close(self._fd)
                raise
        except BaseException:
            os.close(self._live_fd)
            raise
        self.fresh = fresh
        self._closed = False

    def _join(self) -> bool:
        """Hold the liveness lock (shared); True when no other process was using the table."""
        try:
            fcntl.flock(self._live_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(self._live_fd, fcntl.LOCK_SH)
            return False
        # Alone: the table is ours to reset. Nobody uses it until they hold LOCK_SH, which
        # they cannot get before we downgrade (a second reset in that instant is harmless:
        # nobody has used the table yet).
        return True

    def _create(self, slots: int) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            os.ftruncate(self._fd, 0)
            os.ftruncate(self._fd, HEADER.size + slots * SLOT)
            os.pwrite(self._fd, HEADER.pack(MAGIC, VERSION, slots), 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        fcntl.flock(self._live_fd, fcntl.LOCK_SH)  # downgrade: others may join now

    def _check_header(self) -> int:
        head = os.pread(self._fd, HEADER.size, 0)
        if len(head) < HEADER.size:
            raise RuntimeError(f"{self.path} is not a modelmix counters file (too short)")
        magic, version, slots = HEADER.unpack(head)
        if magic != MAGIC or version != VERSION or slots < 1:
            raise RuntimeError(f"{self.path} is not a modelmix counters file (version {VERSION})")
        if os.fstat(self._fd).st_size < HEADER.size + slots * SLOT:
            raise RuntimeError(f"{self.path} is truncated")
        return int(slots)

    def close(self) -> None:
        with self._thread_lock:
            if self._closed:
                return
            self._closed = True
            self._mm.close()
            os.close(self._fd)
            os.close(self._live_fd)  # releases the liveness lock

    def acquire(self) -> None:
        """Take the table's lock (threads, then processes); pair with ``release``."""
        self._thread_lock.acquire()
        if self._closed:
            self._thread_lock.release()
            raise RuntimeError("the shared counters are closed")
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def release(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def lookup(self, digest: bytes, cache: dict[bytes, int]) -> int | None:
        """``find`` through a per-process cache of offsets: a slot only moves when the table
        is compacted or reset, and a moved slot no longer holds its digest, so a cached
        offset is checked with one 16-byte compare."""
        off = cache.get(digest)
        if off is not None and self._mm[off : off + _DIGEST] == digest:
            return off
        off = self.find(digest)
        if off is not None:
            if len(cache) > 100_000:
                cache.clear()
            cache[digest] = off
        return off

    # -- slots (call with the lock held) -------------------------------------------------

    def find(self, digest: bytes) -> int | None:
        """The offset of ``digest``'s slot, or None."""
        mm = self._mm
        n = self.slots
        i = int.from_bytes(digest[1:9], "little") % n
        for _ in range(n):
            off = HEADER.size + i * SLOT
            found = mm[off : off + _DIGEST]
            if found == digest:
                return off
            if found == _EMPTY:
                return None
            i = (i + 1) % n
        return None

    def insert(self, digest: bytes, expires: float) -> int:
        """A new zeroed slot for ``digest`` (not present), expiring at ``expires`` (unix
        seconds); compacts the table when full."""
        off = self._free_slot(digest)
        if off is None:
            self.compact(time.time())
            off = self._free_slot(digest)
            if off is None:
                raise TableFull(
                    f"{self.path}: all {self.slots} counter slots are in use; raise "
                    "budgets.shared_slots"
                )
        mm = self._mm
        mm[off : off + SLOT] = bytes(SLOT)
        mm[off : off + _DIGEST] = digest
        _EXPIRES.pack_into(mm, off + _DIGEST + 24, expires)
        return off

    def _free_slot(self, digest: bytes) -> int | None:
        mm = self._mm
        n = self.slots
        i = int.from_bytes(digest[1:9], "little") % n
        for _ in range(n):
            off = HEADER.size + i * SLOT
            if mm[off : off + _DIGEST] == _EMPTY:
                return off
            i = (i + 1) % n
        return None

    def compact(self, now: float) -> int:
        """Drop slots that expired before ``now`` (unix seconds) and rebuild the table;
        returns how many."""
        mm = self._mm
        live: list[bytes] = []
        dropped = 0
        for i in range(self.slots):
            off = HEADER.size + i * SLOT
            slot = bytes(mm[off : off + SLOT])
            if slot[:_DIGEST] == _EMPTY:
                continue
            (expires,) = _EXPIRES.unpack_from(slot, _DIGEST + 24)
            if expires < now:
                dropped += 1
            else:
                live.append(slot)
        mm[HEADER.size : HEADER.size + self.slots * SLOT] = bytes(self.slots * SLOT)
        for slot in live:
            free = self._free_slot(slot[:_DIGEST])
            assert free is not None
            mm[free : free + SLOT] = slot
        return dropped

    def ints(self, off: int) -> tuple[int, int]:
        a, b = _INTS.unpack_from(self._mm, off + _DIGEST)
        return int(a), int(b)

    def set_ints(self, off: int, a: int, b: int) -> None:
        _INTS.pack_into(self._mm, off + _DIGEST, a, b)

    def floats(self, off: int) -> tuple[float, float, float]:
        a, b, c = _FLOATS.unpack_from(self._mm, off + _DIGEST)
        return float(a), float(b), float(c)

    def set_floats(self, off: int, a: float, b: float, c: float) -> None:
        _FLOATS.pack_into(self._mm, off + _DIGEST, a, b, c)

    def set_expires(self, off: int, expires: float) -> None:
        _EXPIRES.pack_into(self._mm, off + _DIGEST + 24, expires)


def _units_up(amount: Decimal) -> int:
    scaled = amount * _UNIT
    units = int(scaled)  # truncates toward zero
    if units < scaled:
        units += 1
    return min(units, _I64)


def _used_units(t: SharedTable, off: int | None) -> int:
    """A counter's spent + reserved (0 when it has no slot)."""
    return sum(t.ints(off)) if off is not None else 0


def _units(amount: Decimal) -> int:
    return max(min(int((amount * _UNIT).to_integral_value(ROUND_HALF_EVEN)), _I64), -_I64)


def _usd(units: int) -> Decimal:
    return (Decimal(units) / _UNIT).normalize() if units else _ZERO_USD


class SharedSpendStore:
    """``SpendStore`` on a ``SharedTable``: one budget, one set of counters, for every process.

    Amounts are kept in units of 1e-10 USD: a reservation is rounded up, a settled cost to the
    nearest unit (exact for every catalog price). Same semantics as ``InMemorySpendStore``."""

    def __init__(self, table: SharedTable) -> None:
        self.table = table
        self._digests: dict[CounterKey, bytes] = {}
        self._offsets: dict[bytes, int] = {}

    def _d(self, key: CounterKey) -> bytes:
        d = self._digests.get(key)
        if d is None:
            if len(self._digests) > 100_000:
                self._digests.clear()
            d = self._digests[key] = _digest("spend", key)
        return d

    def _slot(self, key: CounterKey) -> int:
        """The counter's slot, created if missing (lock held)."""
        d = self._d(key)
        off = self.table.lookup(d, self._offsets)
        if off is None:
            off = self._offsets[d] = self.table.insert(d, key[3])
        return off

    def reserve(
        self,
        keys: Sequence[CounterKey],
        checks: Sequence[tuple[CounterKey, Decimal]],
        amount: Decimal,
    ) -> int | None:
        t = self.table
        units = _units_up(amount)
        caps = [(self._d(k), int(cap * _UNIT)) for k, cap in checks]
        offsets = self._offsets
        t.acquire()
        try:
            used = ((_used_units(t, t.lookup(d, offsets)), cap) for d, cap in caps)
            failed = first_over(used, units)
            if failed is not None:
                return failed
            for key in keys:
                off = self._slot(key)
                spent, reserved = t.ints(off)
                t.set_ints(off, spent, min(reserved + units, _I64))
        finally:
            t.release()
        return None

    def reserve_seen(
        self,
        keys: Sequence[CounterKey],
        checks: Sequence[tuple[CounterKey, Decimal]],
        amount: Decimal,
    ) -> tuple[int | None, list[tuple[Decimal, Decimal]] | None]:
        t = self.table
        units = _units_up(amount)
        digests = [self._d(k) for k in keys]
        index = {k: i for i, k in enumerate(keys)}
        caps = [(index[k], int(cap * _UNIT)) for k, cap in checks]
        offsets = self._offsets
        t.acquire()
        try:
            offs = [t.lookup(d, offsets) for d in digests]
            if any(off is None for off in offs):
                return MISSING, None
            raw = [t.ints(off) for off in offs if off is not None]
            failed = first_over(((raw[j][0] + raw[j][1], cap) for j, cap in caps), units)
            if failed is None:
                for off, (spent, reserved) in zip(offs, raw, strict=True):
                    assert off is not None
                    t.set_ints(off, spent, min(reserved + units, _I64))
        finally:
            t.release()
        return failed, [(_usd(a), _usd(b)) for a, b in raw]

    def settle(self, keys: Sequence[CounterKey], reserved: Decimal, actual: Decimal) -> None:
        t = self.table
        held = _units_up(reserved)
        cost = _units(actual)
        t.acquire()
        try:
            for key in keys:
                off = self._slot(key)
                spent, res = t.ints(off)
                t.set_ints(off, min(spent + cost, _I64), max(res - held, 0))
        finally:
            t.release()

    def get(self, key: CounterKey) -> tuple[Decimal, Decimal]:
        t = self.table
        d = self._d(key)
        with t.locked():
            off = t.lookup(d, self._offsets)
            spent, reserved = t.ints(off) if off is not None else (0, 0)
        return _usd(spent), _usd(reserved)

    def has(self, key: CounterKey) -> bool:
        t = self.table
        d = self._d(key)
        with t.locked():
            return t.lookup(d, self._offsets) is not None

    def peek(self, keys: Sequence[CounterKey]) -> list[tuple[Decimal, Decimal] | None]:
        t = self.table
        digests = [self._d(k) for k in keys]
        raw: list[tuple[int, int] | None] = []
        t.acquire()
        try:
            for d in digests:
                off = t.lookup(d, self._offsets)
                raw.append(t.ints(off) if off is not None else None)
        finally:
            t.release()
        return [(_usd(r[0]), _usd(r[1])) if r is not None else None for r in raw]

    def seed(self, key: CounterKey, spent: Decimal) -> None:
        t = self.table
        d = self._d(key)
        with t.locked():
            if t.lookup(d, self._offsets) is None:
                off = self._slot(key)
                t.set_ints(off, _units(spent), 0)

    def prune(self, before: float) -> int:
        with self.table.locked():
            return self.table.compact(before)


#: A bucket untouched this long (unix seconds; its own times are monotonic) has refilled
#: completely: it may be forgotten.
_BUCKET_TTL = 120.0


class SharedBucketStore:
    """``BucketStore`` (see limits.py) on a ``SharedTable``: rate limits across processes.
    Times are ``time.monotonic()``, which is the same clock in every process on a host."""

    def __init__(self, table: SharedTable) -> None:
        self.table = table
        self._digests: dict[tuple[str, str, str], bytes] = {}
        self._offsets: dict[bytes, int] = {}

    def _d(self, key: tuple[str, str, str]) -> bytes:
        d = self._digests.get(key)
        if d is None:
            if len(self._digests) > 100_000:
                self._digests.clear()
            d = self._digests[key] = _digest("bucket", key)
        return d

    def take(
        self, buckets: Sequence[tuple[tuple[str, str, str], float, float]], now: float
    ) -> tuple[float, list[float]]:
        t = self.table
        ds = [(self._d(k), cap, amount) for k, cap, amount in buckets]
        expires = time.time() + _BUCKET_TTL
        offsets = self._offsets
        t.acquire()
        try:
            offs: list[int] = []
            levels: list[float] = []
            wait = 0.0
            for d, cap, amount in ds:
                off = t.lookup(d, offsets)
                if off is None:
                    off = offsets[d] = t.insert(d, expires)
                    level = cap
                else:
                    old_level, updated, old_cap = t.floats(off)
                    level = refill(old_level, updated, old_cap, cap, now)
                offs.append(off)
                levels.append(level)
                wait = max(wait, wait_for(level, cap, amount))
            if wait == 0.0:
                levels = [lv - amount for lv, (_, _, amount) in zip(levels, ds, strict=True)]
            for off, level, (_, cap, _) in zip(offs, levels, ds, strict=True):
                t.set_floats(off, level, now, cap)
                t.set_expires(off, expires)
        finally:
            t.release()
        return wait, levels

    def give(self, key: tuple[str, str, str], amount: float, now: float) -> None:
        t = self.table
        d = self._d(key)
        with t.locked():
            off = t.lookup(d, self._offsets)
            if off is None:
                return
            level, updated, cap = t.floats(off)
            level = refill(level, updated, cap, cap, now)
            t.set_floats(off, min(cap, level + amount), now, cap)
            t.set_expires(off, time.time() + _BUCKET_TTL)
