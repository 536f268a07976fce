"""Data, not code: hardware presets, model presets and official image variants (YAML)."""
