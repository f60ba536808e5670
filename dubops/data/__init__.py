"""Data: manifest schema, synthetic corpus, importers, validation, report and loaders."""
