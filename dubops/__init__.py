"""DubOps: train, register, serve and monitor a reasoning-guided, emotion-retrieval dubbing model.

Nothing happens at import: heavy libraries load inside the functions that use them.
"""

__version__ = "0.1.0"
