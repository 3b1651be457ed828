"""How good is the fit: importance-weighted bounds and their trust diagnostics (:mod:`.bounds`), the
tightness report (:mod:`.tightness`), the inference gaps (:mod:`.inference_gap`), the KL and
gradient-estimator study (:mod:`.kl_study`) and what a code is worth (:mod:`.representations`)."""
