"""The registry-wide apply lock (one apply at a time), written once over a backend's primitives.

A backend keeps one lock object that only one creator can make (MLflow: a registered model with a
reserved name; creating one is atomic in every store), carrying a random token, the holder and a
lease. The holder renews the lease every LEASE_S / 3 seconds; a lock whose lease ran out (a killed
apply, or one that lost the registry) is broken by the next apply. Every wait pauses PAUSE_S
between tries and ends at the deadline (lock_wait_s()). The lease is real time shared between
machines, so the clock is given (`Clock`: the system's in production, a fake one in tests)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from mlflow_gitops.errors import LockError, RegistryError
from mlflow_gitops.secrets import redact

WAIT_S = 120.0  # default deadline of a wait for the lock; WAIT_VARIABLE overrides it
WAIT_VARIABLE = "MLFLOW_GITOPS_LOCK_WAIT_S"
PAUSE_S = 1.0  # between two tries: never a busy loop
LEASE_S = 30.0


@dataclass(frozen=True)
class Clock:
    """Where the lock reads time: `wall` (seconds since the epoch: a lease is compared across
    machines), `monotonic` (the wait's deadline) and `sleep` (between two tries)."""

    wall: Callable[[], float]
    monotonic: Callable[[], float]
    sleep: Callable[[float], None]


SYSTEM_CLOCK = Clock(time.time, time.monotonic, time.sleep)


@dataclass(frozen=True)
class HeldLock:
    """The lock as read back: unreadable when the user may not read it."""

    readable: bool
    token: str = ""
    holder: str = ""
    user: str = ""  # the registry user who made it (who may delete it besides an admin)
    lease_until: float = 0.0  # seconds since the epoch

    def describe(self) -> str:
        who = f", MLflow user '{self.user}'" if self.user else ""
        return f"{redact(self.holder)}{who}"


class LockStore(Protocol):
    """What a backend implements for the lock; each method words its own refusals."""

    @property
    def user(self) -> str:
        """Who the requests act as, for messages."""
        ...

    @property
    def lock_where(self) -> str:
        """The lock object and its registry, for messages (no credentials)."""
        ...

    def create_lock(self, token: str, holder: str, lease_until: float) -> bool:
        """Make the lock; False when it exists already. A refusal raises LockError."""
        ...

    def read_lock(self) -> HeldLock | None:
        """The lock as the registry has it; None when there is none."""
        ...

    def renew_lock(self, lease_until: float) -> None:
        """Extend the lease of the lock this process holds."""
        ...

    def break_lock(self, held: HeldLock) -> None:
        """Delete a lock whose lease ran out; gone meanwhile is fine. A refusal raises LockError
        that says who may delete it."""
        ...

    def release_lock(self, lease_s: float) -> None:
        """Delete our own lock; gone already is fine. A failure raises LockError that says what
        it blocks (for lease_s seconds)."""
        ...

    def hidden_lock(self, waited: str) -> LockError:
        """The error a wait ends with when the lock stayed taken and this user may not read it."""
        ...


def lock_wait_s() -> float:
    """How long an apply waits for the lock: WAIT_VARIABLE, or WAIT_S."""
    raw = os.environ.get(WAIT_VARIABLE, "")
    try:
        return max(0.0, float(raw)) if raw else WAIT_S
    except ValueError:
        raise RegistryError(
            f"{WAIT_VARIABLE}={raw!r} is not a number of seconds", f"e.g. {WAIT_VARIABLE}=300"
        ) from None


@contextmanager
def hold(store: LockStore, holder: str, clock: Clock) -> Iterator[None]:
    """Hold the registry's apply lock while the block runs."""
    token = uuid.uuid4().hex
    wait_s = lock_wait_s()
    deadline = clock.monotonic() + wait_s
    while True:
        if store.create_lock(token, holder[:200], clock.wall() + LEASE_S):
            break
        held = store.read_lock()
        if held is not None and held.token == token:
            break  # our own create succeeded; its answer was lost and the client retried it
        if held is not None and held.readable and held.lease_until < clock.wall():
            store.break_lock(held)  # the holder stopped renewing: killed, or cut off
        if clock.monotonic() > deadline:
            raise _timeout(store, held, f"{wait_s:.0f} s")
        clock.sleep(PAUSE_S)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(store, clock, stop), daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join(timeout=5)
        store.release_lock(LEASE_S)


def _renew(store: LockStore, clock: Clock, stop: threading.Event) -> None:
    while not stop.wait(LEASE_S / 3):
        try:
            store.renew_lock(clock.wall() + LEASE_S)
        except Exception:  # a missed renewal only shortens the lease
            continue


def _timeout(store: LockStore, held: HeldLock | None, waited: str) -> LockError:
    if held is not None and not held.readable:
        return store.hidden_lock(waited)
    if held is None:
        return LockError(
            f"could not take the apply lock ({store.lock_where}) within {waited}: other applies "
            "kept taking it; nothing was applied",
            f"run apply again (wait longer with {WAIT_VARIABLE}=<seconds>)",
        )
    until = datetime.fromtimestamp(held.lease_until, UTC).strftime("%H:%M:%S")
    return LockError(
        f"another apply holds the registry's apply lock ({held.describe()}, lease renewed "
        f"until {until} UTC) and did not release it within {waited}; nothing was applied",
        f"wait and run apply again (or wait longer with {WAIT_VARIABLE}=<seconds>); a holder "
        f"that stops renewing its lease loses it after {LEASE_S:.0f} s (the lock is "
        f"{store.lock_where})",
    )
