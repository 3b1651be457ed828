"""``pyro-vae`` under torchrun with one rank raising at its second epoch: how does the job end?

Run as ``python -m torch.distributed.run --standalone --nproc_per_node=2 tests/support/failing_rank.py
train ...``; the rank named by ``FAIL_RANK`` raises a UserError when its second epoch starts.
"""

import os
import sys

from pyro_vae.cli import main
from pyro_vae.data import Dataset
from pyro_vae.errors import UserError

if os.environ.get("RANK") == os.environ.get("FAIL_RANK", "1"):
    epochs = []
    original = Dataset.batches

    def failing(self, *args, **kwargs):
        epochs.append(1)
        if len(epochs) == 2:
            raise UserError("injected failure at the second epoch")
        return original(self, *args, **kwargs)

    Dataset.batches = failing

sys.exit(main(sys.argv[1:]))
