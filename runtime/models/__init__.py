"""The models: the store that finds them, the engine that runs one, the manager that keeps them resident."""
