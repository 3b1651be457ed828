"""The one exception type the command line turns into a one-line message and a non-zero exit."""


class UserError(ValueError):
    """Bad input from the user: the message names the problem and the fix, in one line."""


def check_positive(name, value):
    """Raise :class:`UserError` unless ``value`` is a positive number."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise UserError(f"{name} must be a positive number, got {value!r}")
    return value
