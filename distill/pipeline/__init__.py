"""`distill run`: the orchestrator (plan, fingerprints, execution, logs) over the stage list."""
