"""The `eval` stage: sample a model on benchmarks, grade with the shared checker, R1 protocol figures."""
