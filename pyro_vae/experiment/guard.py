"""The resource guard: what a piece of work will need, checked before the work starts.

Every command (and every Python caller who wants it) describes its work as a :class:`Need`: the
memory of each part that is alive at the peak (parameters and optimiser state, a chunk of draws
through the networks, the log weights kept per image, AIS chains, a figure's canvas...) and the
multiply-adds it will do. :func:`check` refuses it, before anything is computed or written, in
three cases, each a one-line :class:`~pyro_vae.errors.UserError` naming the estimate and what to
lower:

1. the peak is beyond what any machine can hold (:data:`ADDRESS_SPACE`, 128 TiB: the user address
   space of a 64-bit Linux process with 4-level page tables), whatever the machine;
2. the peak exceeds the memory available now (:func:`available_bytes`: the least of the
   system's ``MemAvailable``, the cgroup's limit less its usage, and the address-space and data
   limits of ``ulimit -v``/``ulimit -d`` less what the process already uses);
3. the work exceeds :data:`WORK_CEILING` multiply-adds (about a day on one core at
   :data:`MULTIPLY_ADDS_PER_SECOND`) and ``force`` was not given.

The estimates are upper bounds where they can be (every layer's output counted for every row, the
copies a step keeps measured and rounded up) and come with :data:`RESERVE` for the libraries a
command loads as it goes. Each part names what to lower for it; the message of a refusal for memory
gives the largest part's. Example::

    >>> weights = Part("the log weights", 8 * 10**15, "lower num_samples=10000000000000", "num_samples")
    >>> check(Need("evaluate", [weights]), available=16 * 2**30)
    Traceback (most recent call last):
    ...
    pyro_vae.errors.UserError: evaluate would need about 8.0 PB of memory at its peak (the log weights 8.0 PB), ...
    >>> step = Part("a step", 10**6)
    >>> check(Need("train", [step], work=10**20, fix="lower epochs=9", param="epochs"), available=2**30)
    Traceback (most recent call last):
    ...
    pyro_vae.errors.UserError: train would do about 1e+20 multiply-adds, about 106 years on one core, ...
    >>> check(Need("train", [step], work=10**20), available=2**30, force=True)  # consent given
    537870912
"""

import os
import resource
from dataclasses import dataclass, field

import torch

from ..errors import UserError
from ..inference.memory import available_bytes as system_available

ADDRESS_SPACE = 2**47  # bytes: the most a 64-bit Linux process can map (4-level page tables)
RESERVE = 512 * 2**20  # bytes: libraries loaded during a command (arviz, scikit-learn, matplotlib), allocator slack
MULTIPLY_ADDS_PER_SECOND = 3e10  # one core, the demo net's matrix products (measured: 2.4e10 to 3.4e10)
WORK_CEILING = 3e15  # multiply-adds: about 28 hours on one core at MULTIPLY_ADDS_PER_SECOND


@dataclass
class Part:
    """One part of a :class:`Need`'s memory.

    :param name: what it is (``"the S x B log weights"``).
    :param bytes: its size at the peak.
    :param fix: what lowers it, in the library's ``name=value`` form (``"lower num_samples=5000"``).
    :param param: the parameter names ``fix`` speaks of.
    """

    name: str
    bytes: int
    fix: str = ""
    param: tuple = ()


@dataclass
class Need:
    """What a piece of work needs: its memory :class:`Part` s alive together at the peak, and its
    multiply-adds in all.

    :param what: the work, as a message starts (``"evaluate"``).
    :param parts: the :class:`Part` s of the peak.
    :param work: multiply-adds through the networks, forward and backward.
    :param fix: what lowers the work, in the library's ``name=value`` form.
    :param param: the parameter names ``fix`` speaks of.
    """

    what: str
    parts: list
    work: float = 0.0
    fix: str = ""
    param: tuple = field(default_factory=tuple)

    @property
    def peak(self):
        """Bytes at the peak: the parts plus :data:`RESERVE`."""
        return int(sum(part.bytes for part in self.parts)) + RESERVE

    def largest(self):
        """The biggest :class:`Part`."""
        return max(self.parts, key=lambda part: part.bytes)


def check(need, available=None, force=False, ceiling=None):
    """Refuse ``need`` (a :class:`Need`) when it cannot or should not run; return its peak in bytes.

    :param available: bytes the work may take (default :func:`available_bytes`).
    :param force: run work above ``ceiling`` multiply-adds anyway (memory limits still hold).
    :param ceiling: the most multiply-adds run without ``force`` (default :data:`WORK_CEILING`).
    """
    ceiling = WORK_CEILING if ceiling is None else ceiling
    peak, big = need.peak, need.largest()
    fix = f"; {big.fix}" if big.fix else ""
    if peak > ADDRESS_SPACE:
        raise UserError(f"{need.what} would need about {human_bytes(peak)} of memory at its peak "
                        f"({big.name} {human_bytes(big.bytes)}), more than any machine can hold (a process "
                        f"addresses at most {human_bytes(ADDRESS_SPACE)}){fix}", param=big.param)
    if available is None:
        available = available_bytes()
    if available is not None and peak > available:
        raise UserError(f"{need.what} needs about {human_bytes(peak)} of memory at its peak ({big.name} "
                        f"{human_bytes(big.bytes)}), more than the {human_bytes(available)} available{fix}",
                        param=big.param)
    if need.work > ceiling and not force:
        fix = f"; {need.fix}" if need.fix else ""
        raise UserError(f"{need.what} would do about {need.work:.2g} multiply-adds, about "
                        f"{human_seconds(need.work / MULTIPLY_ADDS_PER_SECOND)} on one core, above the ceiling of "
                        f"{ceiling:.2g} (about {human_seconds(ceiling / MULTIPLY_ADDS_PER_SECOND)}){fix}, or give "
                        "force=True to run it anyway", param=(*_params(need.param), "force"))
    return peak


def _params(param):
    return (param,) if isinstance(param, str) else tuple(param)


def available_bytes(device=None):
    """Bytes this process may still allocate: on a CUDA ``device`` its free memory; on the CPU the
    least of ``MemAvailable`` (/proc/meminfo; physical memory where it is missing), the cgroup's
    memory limit less its usage (v2 and v1), and ``RLIMIT_AS``/``RLIMIT_DATA`` less the process's
    current size. None when nothing is known."""
    if device is not None and torch.device(device).type == "cuda":
        return torch.cuda.mem_get_info(torch.device(device))[0]
    limits = [system_available(), _cgroup_available(), *_rlimit_available()]  # system: MemAvailable
    known = [n for n in limits if n is not None]
    return max(0, min(known)) if known else None


def _cgroup_available():
    """The cgroup's memory limit less its usage (page cache counted as free), or None without a limit."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:  # "0::/path" (v2) or "4:memory:/path" (v1)
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            found = _cgroup_pair(os.path.join("/sys/fs/cgroup", path.lstrip("/")), "memory.max", "memory.current",
                                 "inactive_file")
        elif "memory" in controllers.split(","):
            found = _cgroup_pair(os.path.join("/sys/fs/cgroup/memory", path.lstrip("/")), "memory.limit_in_bytes",
                                 "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        if found is not None:
            return found
    return None


def _cgroup_pair(folder, limit_file, usage_file, cache_key):
    try:
        with open(os.path.join(folder, limit_file)) as f:
            limit = f.read().strip()
        with open(os.path.join(folder, usage_file)) as f:
            usage = int(f.read())
    except (OSError, ValueError):
        return None
    if limit == "max" or int(limit) >= 2**60:  # no limit
        return None
    cache = 0
    try:
        with open(os.path.join(folder, "memory.stat")) as f:
            for line in f:
                key, value = line.split()
                if key == cache_key:
                    cache = int(value)
    except (OSError, ValueError):
        pass
    return int(limit) - max(0, usage - cache)


def _rlimit_available():
    """``RLIMIT_AS`` less the process's virtual size, ``RLIMIT_DATA`` less its data size (each None
    when unlimited)."""
    sizes = _status_sizes()
    out = []
    for limit, key in ((resource.RLIMIT_AS, "VmSize"), (resource.RLIMIT_DATA, "VmData")):
        soft, _ = resource.getrlimit(limit)
        if soft != resource.RLIM_INFINITY:
            out.append(soft - sizes.get(key, 0))
    return out


def _status_sizes():
    """``{"VmSize": bytes, "VmData": bytes}`` of this process (empty where /proc is missing)."""
    sizes = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmSize", "VmData"):
                    sizes[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return sizes


def human_bytes(n):
    """``1.2 GB``: decimal units, two significant figures.

    Example::

        >>> human_bytes(1.5e9), human_bytes(3e3), human_bytes(2**47)
        ('1.5 GB', '3.0 kB', '140.7 TB')
    """
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def human_seconds(s):
    """``3 min``, ``5.2 hours``, ``4 days``, ``2e+05 years``.

    Example::

        >>> human_seconds(90), human_seconds(7200), human_seconds(86400 * 3), human_seconds(3.2e9)
        ('2 min', '2.0 hours', '3.0 days', '101 years')
    """
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400:
        return f"{s / 3600:.1f} hours"
    if s < 365 * 86400:
        return f"{s / 86400:.1f} days"
    years = s / (365 * 86400)
    return f"{years:.0f} years" if years < 1e5 else f"{years:.1g} years"


def row_bytes(rows, width, value_bytes=4, copies=1):
    """Bytes of ``rows`` rows of ``width`` values each, ``copies`` times (no overflow: Python ints)."""
    return int(rows) * int(width) * int(value_bytes) * int(copies)


def ceil_div(a, b):
    return -(-int(a) // int(b))


__all__ = ["ADDRESS_SPACE", "MULTIPLY_ADDS_PER_SECOND", "Need", "Part", "RESERVE", "WORK_CEILING", "available_bytes",
           "check", "human_bytes", "human_seconds"]
