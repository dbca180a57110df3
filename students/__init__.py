"""Student training: presets for the six R1-distill bases, SFT with packing, memory planning."""
