"""DubOps tests (a package so ``tests.fixtures`` builders import the same way everywhere)."""
