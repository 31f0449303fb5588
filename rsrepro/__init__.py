"""Framework-free code shared by both trees: registries, metrics, config schema, palettes."""
