"""linly-push-hello: an example linly-push plugin package.

``avatar.HelloAvatar`` and ``tts.BeepTTS`` are registered in this package's pyproject.toml under
the entry-point groups ``linly_push.avatars`` and ``linly_push.tts``; linly-push finds them there
and never imports this package until a user asks for one of them.
"""
