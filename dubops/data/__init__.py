"""Data: the manifest schema, the synthetic corpus, importers, validation, the report and loaders."""
