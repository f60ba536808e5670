"""Importers that read published corpus layouts (V2C-Animation, GRID) into our manifest."""
