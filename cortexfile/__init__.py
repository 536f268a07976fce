"""The Cortexfile: schema, loading with positions, precedence, validation and the plan."""
