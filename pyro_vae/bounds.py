"""``pyro_vae.bounds``: the importance-weighted bounds, kept importable here by their old name.

Everything lives in :mod:`pyro_vae.diagnostics.bounds`; this module re-exports it unchanged, so
``pyro_vae.bounds.log_weights`` and ``pyro_vae.bounds.iwae`` keep working.
"""

from .diagnostics.bounds import *  # noqa: F401,F403
from .diagnostics.bounds import (  # noqa: F401
                                 DEFAULT_CHUNK_ROWS,
                                 KHAT_THRESHOLD,
                                 MIN_PSIS_SAMPLES,
                                 StreamingLogMeanExp,
                                 active_units,
                                 bound_curve,
                                 chunk_sizes,
                                 default_chunk_size,
                                 ess,
                                 iter_log_weights,
                                 iwae,
                                 log_mean_exp,
                                 log_weights,
                                 mixture_iwae,
                                 psis,
)
