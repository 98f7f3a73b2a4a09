"""PSS within a group of processes: each resident page counted once, split only among the
processes of the group that map it (``/proc/PID/pagemap`` physical frame numbers; needs root,
else :func:`group_pss` returns None).

Plain PSS also splits pages with every unrelated process that maps the same files (another
Python running the same venv, a test suite beside the benchmark), so it reads lower on a busy
machine. This figure does not depend on what else runs: it is the memory the group itself
holds, and never below the PSS of a quiet machine.
"""

from __future__ import annotations

import struct
from collections import Counter

PAGE = 4096
_PRESENT = 1 << 63
_PFN_MASK = (1 << 55) - 1


def _frames(pid: int) -> set[int]:
    frames: set[int] = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in maps:
            fields = line.split()
            if len(fields) > 5 and fields[5] == "[vsyscall]":
                continue
            low, high = (int(x, 16) for x in fields[0].split("-"))
            pagemap.seek(low // PAGE * 8)
            data = pagemap.read((high - low) // PAGE * 8)
            for (entry,) in struct.iter_unpack("<Q", data):
                if entry & _PRESENT and entry & _PFN_MASK:
                    frames.add(entry & _PFN_MASK)
    return frames


def group_pss(pids: list[int]) -> dict[int, float] | None:
    """Bytes of PSS per pid within the group (None without access to frame numbers)."""
    try:
        frames = {pid: _frames(pid) for pid in pids}
    except OSError:
        return None
    if pids and not any(frames.values()):
        return None  # frame numbers read as 0: not root
    owners = Counter(pfn for pid_frames in frames.values() for pfn in pid_frames)
    return {
        pid: sum(PAGE / owners[pfn] for pfn in pid_frames) for pid, pid_frames in frames.items()
    }
