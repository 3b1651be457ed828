"""Short command-line specs ``name[:arg]`` for families, one registry per family.

A registry maps a name to a :class:`Choice`: its usage string for the help and a builder
``build(arg, ctx)`` that returns the object (``arg`` is the text after the colon, or None).
"""

from collections.abc import Callable
from dataclasses import dataclass

from .errors import UserError


@dataclass(frozen=True)
class Context:
    """What a family may need to know when it is built from a spec."""

    z_dim: int  # latent dimension
    data_dim: int  # flattened data dimension D


@dataclass(frozen=True)
class Choice:
    usage: str  # e.g. "normal:SCALE"
    help: str  # one line for the help
    build: Callable  # (arg: Optional[str], ctx: Context) -> object


def usages(registry):
    return "|".join(c.usage for c in registry.values())


def describe(registry):
    return "; ".join(f"{c.usage}: {c.help}" for c in registry.values())


def build(registry, spec, kind, ctx):
    """Build the object a spec names, or raise a one-line :class:`UserError` listing the choices."""
    name, _, arg = str(spec).partition(":")
    if name not in registry:
        raise UserError(f"unknown {kind} {spec!r}; choose one of {usages(registry)}")
    return registry[name].build(arg or None, ctx)


def no_arg(usage, arg):
    if arg is not None:
        raise UserError(f"{usage} takes no argument after ':', got {arg!r}")


def number_arg(usage, arg, cast=float, default=None) -> float | None:
    """Parse a positive number after the colon of ``usage``; ``default`` when absent (None: required)."""
    if arg is None:
        if default is None:
            raise UserError(f"{usage} needs its argument, e.g. {usage.split(':')[0]}:{cast(1)}")
        return default
    try:
        value = cast(arg)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise UserError(f"{usage} needs a positive {cast.__name__} after ':', got {arg!r}")
    return value
