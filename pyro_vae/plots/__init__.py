"""Figures: plain data in, a :class:`matplotlib.figure.Figure` out (no pyplot, no global state).

:mod:`.curves` holds the curves and reports (training, bound tightness, k-hat, estimator variance);
:mod:`.latent` the latent space and images (2-d manifold, scatter, reconstructions, samples).
"""

from .curves import (
                     bound_tightness_figure,
                     gradient_snr_figure,
                     image_rows_figure,
                     khat_figure,
                     learning_curves_figure,
                     training_curves_figure,
                     variance_ratio_figure,
)
from .latent import (
                     empirical_quantiles,
                     image_grid_figure,
                     image_panels_figure,
                     interpolate,
                     interpolation_figure,
                     latent_scatter_figure,
                     manifold_figure,
                     manifold_grid,
                     marginal_quantiles,
                     pca_2d,
                     reconstructions_figure,
)

__all__ = ["bound_tightness_figure", "empirical_quantiles", "gradient_snr_figure", "image_grid_figure",
           "image_panels_figure", "image_rows_figure", "interpolate",
           "interpolation_figure", "khat_figure", "latent_scatter_figure", "learning_curves_figure",
           "manifold_figure", "manifold_grid", "marginal_quantiles", "pca_2d", "reconstructions_figure",
           "training_curves_figure", "variance_ratio_figure"]
