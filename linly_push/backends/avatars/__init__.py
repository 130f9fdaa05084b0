"""The built-in avatars, one module each, and what only avatars use: ``visemes`` (mouth shapes
from phoneme marks or loudness) and ``gestures`` (blinks and glances). They are plugins like any
other: registered as entry points in ``linly_push.avatars`` (pyproject.toml), found by
``backends.registry``, and imported by nothing in the library."""
