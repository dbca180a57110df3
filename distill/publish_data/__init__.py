"""`distill publish-data`: the kept traces as a hub dataset with a card written from the run."""
