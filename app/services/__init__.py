"""Service functions the thin routes call: datasets, recommendations, jobs, meta-learner."""
