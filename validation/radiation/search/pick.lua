-- written by scripts/rad_search.lua (2026-11-26 20:50 UTC)
return { depth = 1, width = 64, trial = 2, flux_mae_val = 0.786328,
  planck_depth = 1, planck_width = 32 }
