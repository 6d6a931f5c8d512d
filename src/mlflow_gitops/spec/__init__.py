"""registry.yaml: the schema (model), the loader (load) and the semantic checks (check)."""
