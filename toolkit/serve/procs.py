"""Process identity from ``/proc``, so tritonkit signals only the exact process it started.

A pid alone names nothing for long: it is reused once the process is gone, and a state file that
records it may be corrupt or hostile (``-1`` and ``0`` make ``kill`` signal every process or the
caller's own group). A process is therefore recorded as (pid, start time, executable) and matched on
all three; signals go through a pidfd opened while it matched, so they reach that process or none.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessIdentity:
    """What names one process for its whole life: pid, start time (clock ticks since boot), executable."""

    pid: int
    start_time: int
    exe: str


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/PID/stat`` (state first), parsed after the last ')' since comm may hold any byte."""
    try:
        text = Path(f"/proc/{pid}/stat").read_bytes().decode("ascii", errors="replace")
    except OSError:
        return None
    if ")" not in text:
        return None
    return text.rsplit(")", 1)[1].split()


def identity_of(pid: int) -> ProcessIdentity | None:
    """The identity of live process ``pid`` (None when it is gone, a zombie, or unreadable)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return None
    fields = _stat_fields(pid)
    if not fields or len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    try:
        start = int(fields[19])  # field 22 of stat: starttime
        exe = os.readlink(f"/proc/{pid}/exe")
    except (OSError, ValueError):
        return None
    # A binary replaced or removed while it runs (a cache cleared) is still the same process.
    exe = exe.removesuffix(" (deleted)")
    return ProcessIdentity(pid=pid, start_time=start, exe=exe)


def session_of(pid: int) -> tuple[int, int] | None:
    """(process group, session) of ``pid`` from ``/proc/PID/stat`` (fields 5 and 6)."""
    fields = _stat_fields(pid)
    try:
        return (int(fields[2]), int(fields[3])) if fields and len(fields) > 3 else None
    except ValueError:
        return None


def session_members(leader: int) -> list[ProcessIdentity]:
    """Live processes in session ``leader`` whose group is ``leader`` too (the server and its stubs)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if session_of(pid) != (leader, leader):
            continue
        ident = identity_of(pid)
        if ident is not None:
            members.append(ident)
    return members


class PidHandle:
    """A pidfd on a process that matched an identity when opened: signals reach it or nothing.

    Linux keeps a pid unused while a pidfd refers to a live or unreaped process, but once it is reaped
    the number is free again; ``pidfd_send_signal`` then fails instead of hitting a newcomer.
    """

    def __init__(self, expected: ProcessIdentity) -> None:
        self.identity = expected
        self._fd = os.pidfd_open(expected.pid)  # raises ProcessLookupError when gone
        # Checked after opening: the pidfd now pins whatever process holds the pid, so a match means it is ours.
        if identity_of(expected.pid) != expected:
            os.close(self._fd)
            raise ProcessLookupError(f"pid {expected.pid} is no longer the recorded process")

    def send(self, sig: int) -> bool:
        """Signal the process; False when it has exited."""
        try:
            signal.pidfd_send_signal(self._fd, sig)
            return True
        except ProcessLookupError:
            return False

    def alive(self) -> bool:
        """True until the process exits (a zombie counts as exited)."""
        if not self.send(0):
            return False
        return identity_of(self.identity.pid) == self.identity

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> PidHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def session_handles(leader: int, started_since: int = 0) -> list[PidHandle]:
    """Pidfd handles on the members of session ``leader`` other than the leader (the python stubs)
    that started at or after ``started_since`` (clock ticks since boot, as the leader's start time).

    Empty unless ``leader`` leads its own session and group (pgid == sid == pid): a group number taken
    from elsewhere names nothing we may signal. A leader that is gone (a crashed server, reaped) still
    names its session: Linux never hands out a pid that is in use as a session or group id, so
    processes in session ``leader`` can only be the stubs it left.
    """
    lead = session_of(leader)
    if lead is not None and lead != (leader, leader):
        return []
    handles = []
    for ident in session_members(leader):
        if ident.pid == leader or ident.start_time < started_since:
            continue
        try:
            handles.append(PidHandle(ident))
        except ProcessLookupError:
            pass
    return handles
