"""The four emotion extractors behind one interface."""
