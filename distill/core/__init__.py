"""The shared foundation: records, data layer, configuration, R1 text form, the answer checker,
worker processes, the code sandbox, the model loader and the stage interface. Never imports a stage."""
