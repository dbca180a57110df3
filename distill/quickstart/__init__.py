"""The offline quickstart: a synthetic task, a tiny teacher, and the final comparison."""
