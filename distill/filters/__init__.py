"""The `filter` stage: named rules over trace records, cheap ones first (see stage.py)."""
