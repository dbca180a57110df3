"""Teacher sampling: `distill generate` (vLLM engine or OpenAI-compatible endpoints)."""
