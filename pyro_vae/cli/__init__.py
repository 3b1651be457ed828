"""The ``pyro-vae`` command: parsers (:mod:`.parser`), the run configuration (:mod:`.config`), building
models from it (:mod:`.build`), run directories (:mod:`.runs`) and one ``*_command`` module per
subcommand. Only this layer speaks of flags."""

from .parser import main, make_parser

__all__ = ["main", "make_parser"]
