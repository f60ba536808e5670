"""The ``dubops`` command line (Typer + Rich), with lazy imports so ``--help`` is instant."""
