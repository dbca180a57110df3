"""distill: distil long chain-of-thought reasoning from a teacher into small dense students."""

__version__ = "0.1.0"
