"""The built-in TTS backends, one module each. They are plugins like any other: registered as
entry points in ``linly_push.tts`` (pyproject.toml), found by ``backends.registry``, and imported
by nothing in the library."""
