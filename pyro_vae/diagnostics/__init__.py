"""How good is the fit: importance-weighted bounds and their trust diagnostics (:mod:`.bounds`), the
tightness report (:mod:`.tightness`), the inference gaps (:mod:`.inference_gap`), the KL and
gradient-estimator study (:mod:`.kl_study`) and what a code is worth (:mod:`.representations`).
Annealed importance sampling with HMC (:mod:`.ais`, :mod:`.hmc`, :mod:`.latent_space`) and the BDMC
sandwich (:mod:`.bdmc`) settle log p(x); :mod:`.ais_report` puts them in the report."""
