"""The model registry: the dubbing bundle as an MLflow pyfunc, aliases, the promotion gate."""
