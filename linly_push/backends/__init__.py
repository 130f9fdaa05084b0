"""Backends: ``base`` (the contracts), ``registry`` (finding them), and the built-in plugins,
``tts/`` and ``avatars/``."""
