"""``python -m pyro_vae ...``: the ``pyro-vae`` command (also under ``torchrun -m pyro_vae``)."""

import sys

from .cli import main

sys.exit(main())
