"""Short specs ``name[:arg]`` for what a user swaps, declared once where each class is defined.

A :class:`Registry` holds one kind (priors, likelihoods, posteriors, noises, objectives, schedules,
models). A class registers its spec name with a decorator, in the spirit of torch's ``@register_kl``::

    @PRIORS.register("mog", "mixture of K Gaussians", arg="K", cast=int, attr="num_components", example=3)
    class MixtureOfGaussians(Prior): ...

That one declaration gives the usage string (``mog:K``) for the command line's help, building the object from a
spec (:meth:`Registry.build`) and writing the spec of an object back (:meth:`Registry.spec_of`,
which a family's ``spec()`` calls), so the two can never drift apart.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import UserError

REQUIRED = object()  # an argument with no default: the spec must give it


@dataclass(frozen=True)
class Context:
    """What a family may need to know when it is built from a spec."""

    z_dim: int  # latent dimension
    data_dim: int  # flattened data dimension D


@dataclass(frozen=True)
class Spec:
    """One registered spec name: how to parse its argument, build its object and write it back."""

    name: str  # e.g. "normal"
    help: str  # one line for the help
    target: Any  # the class (or builder function) the name stands for
    arg: str | None = None  # the argument's name in the usage ("SCALE"), None: the name takes none
    cast: Callable = float  # int or float
    default: Any = REQUIRED  # the value when the argument is omitted (REQUIRED: it must be given)
    attr: str | Callable | None = None  # the object's attribute holding the argument (or obj -> value)
    build: Callable | None = None  # (target, value, ctx) -> object; default target(value) or target()
    example: Any = None  # an argument the docs and the generic tests use (None: the default)

    @property
    def usage(self):
        if self.arg is None:
            return self.name
        return f"{self.name}:{self.arg}" if self.default is REQUIRED else f"{self.name}[:{self.arg}]"

    def parse(self, text):
        """The argument's value from the text after the colon (None: absent), or a one-line error."""
        if self.arg is None:
            if text is not None:
                raise UserError(f"{self.usage} takes no argument after ':', got {text!r}")
            return None
        named = f"{self.name}:{self.arg}"
        if text is None:
            if self.default is REQUIRED:
                raise UserError(f"{named} needs its argument, e.g. {self.name}:{self.cast(1)}")
            return self.default
        try:
            value = self.cast(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise UserError(f"{named} needs a positive {self.cast.__name__} after ':', got {text!r}")
        return value

    def make(self, text, ctx):
        value = self.parse(text)
        if self.build is not None:
            return self.build(self.target, value, ctx)
        return self.target() if self.arg is None else self.target(value)

    def write(self, obj):
        """The spec naming ``obj``: ``name``, or ``name:value`` when the argument is not the default."""
        if self.arg is None:
            return self.name
        value = self.attr(obj) if callable(self.attr) else getattr(obj, self.attr)
        value = value.item() if hasattr(value, "item") else value
        if self.default is not REQUIRED and value == self.default:
            return self.name
        if value is None:  # only a default may be None
            raise ValueError(f"{type(obj).__name__} has no value for {self.usage}")
        return f"{self.name}:{value:g}"

    def examples(self):
        """Specs that exercise this name: with the example argument, and bare when it has a default."""
        if self.arg is None:
            return [self.name]
        given = self.example if self.example is not None else self.default
        out = [f"{self.name}:{given:g}"] if given not in (None, REQUIRED) else []
        return out + ([self.name] if self.default is not REQUIRED else [])


class Registry(dict):
    """The spec names of one kind, ``{name: Spec}``, filled by :meth:`register` where classes are defined.

    :param kind: what the names are, for messages (``"prior"``).
    :param separator: what separates the usages an unknown name's message lists.
    """

    def __init__(self, kind, separator="|"):
        super().__init__()
        self.kind = kind
        self.separator = separator  # between the usages a message lists

    def register(self, name, help, arg=None, cast=float, default=REQUIRED, attr=None, build=None, example=None):
        """Decorator: register the class or builder it decorates under ``name``; returns it unchanged.

        :param name: the spec's name.
        :param help: one line for the help.
        :param arg: the argument's name in the usage (``"K"``), None when the name takes none.
        :param cast: ``int`` or ``float``: the argument's type (it must be positive).
        :param default: the value when the argument is omitted; ``REQUIRED`` when it must be given.
        :param attr: the attribute of a built object that holds the argument (to write the spec back),
            or a function of the object returning it.
        :param build: ``build(target, value, ctx)`` when the target is not built as ``target(value)``.
        :param example: an argument for the docs and the generic tests.
        """
        def decorate(target):
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self[name] = Spec(name, help, target, arg, cast, default, attr, build, example)
            return target

        return decorate

    def build(self, spec, ctx=None):
        """The object ``spec`` (``name[:arg]``) names, or a one-line :class:`UserError` listing the choices."""
        name, colon, text = str(spec).partition(":")
        if name not in self:
            listed = self.separator.join(entry.usage for entry in self.values())
            raise UserError(f"unknown {self.kind} {spec!r}; choose one of {listed}")
        return self[name].make(text if colon else None, ctx)

    def spec_of_class(self, cls):
        """The registered name of ``cls`` (None when it has none)."""
        return next((name for name, entry in self.items() if entry.target is cls), None)

    def spec_of(self, obj):
        """The spec that builds an object like ``obj``; None when its exact class is not registered
        (a user's own subclass, or a part such as the autoencoders' code priors)."""
        for entry in self.values():
            if entry.target is type(obj):
                return entry.write(obj)
        return None


def usages(registry):
    return "|".join(c.usage for c in registry.values())


def describe(registry):
    return "; ".join(f"{c.usage}: {c.help}" for c in registry.values())


def build(registry, spec, kind, ctx):
    """Build the object a spec names (``kind`` names the registry's contents in messages)."""
    if isinstance(registry, Registry):
        return registry.build(spec, ctx)
    raise TypeError(f"expected a Registry of {kind} specs, got {type(registry).__name__}")
