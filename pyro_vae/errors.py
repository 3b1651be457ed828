"""``UserError``, the one exception the command line prints as one line, and the argument validators.

Library code names its own parameters in messages (``num_samples must be a positive integer, got 0``)
and records them on the error (``UserError.param``); only :mod:`pyro_vae.cli` turns a parameter into
its command-line flag.
"""

import math
import numbers


class _NamesParameters:
    """A message about parameters: ``param`` is a name, a tuple of names, or None."""

    def __init__(self, message, param=None):
        super().__init__(message)
        self.param = param

    def params(self):
        """The parameter names this message is about, as a tuple."""
        if self.param is None:
            return ()
        return (self.param,) if isinstance(self.param, str) else tuple(self.param)


class UserError(_NamesParameters, ValueError):
    """Bad input from the user: the message names the problem and the fix, in one line.

    :param param: the parameter (a name, or a tuple of names) the message is about, or None; the
        command line replaces each named parameter in the message by its flag. Messages name a
        parameter as their first word, as an assignment (``num_samples=5000``) or in backticks
        (```lr_schedule```).
    """


class ParamWarning(_NamesParameters, UserWarning):
    """A warning whose message names parameters as :class:`UserError`'s do (``param``), so the
    command line can print their flags."""


def _number(value):
    """``value`` as a Python or numpy number when it is a real number (0-d numpy arrays and tensors
    unwrapped, bools refused), else None."""
    if not isinstance(value, numbers.Real) and tuple(getattr(value, "shape", (None,))) == ():
        value = value.item()  # a 0-d tensor or array
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or type(value).__name__ == "bool_":
        return None
    return value


def check_int(name, value, least=1):
    """``value`` as an ``int`` of at least ``least``, or a :class:`UserError` naming ``name``.

    Accepts Python and numpy integers and 0-d integer tensors; refuses bools, floats and strings.
    """
    number = _number(value)
    if not isinstance(number, numbers.Integral) or number < least:
        what = "a positive integer" if least == 1 else \
            "0 or a positive integer" if least == 0 else f"an integer of at least {least}"
        raise UserError(f"{name} must be {what}, got {value!r}", param=name)
    return int(number)


def check_positive(name, value):
    """``value`` as a finite ``float`` above 0, or a :class:`UserError` naming ``name``."""
    number = _number(value)
    if number is None or not math.isfinite(number) or not number > 0:
        raise UserError(f"{name} must be a positive number, got {value!r}", param=name)
    return float(number)


def check_probability(name, value):
    """``value`` as a ``float`` strictly between 0 and 1, or a :class:`UserError` naming ``name``."""
    number = _number(value)
    if number is None or not 0 < number < 1:
        raise UserError(f"{name} must be a probability in (0, 1), got {value!r}", param=name)
    return float(number)
