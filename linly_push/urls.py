"""Output URLs: expanding ${VAR}, telling outputs apart, and keeping stream keys out of text.

A stream key is a password: it must never reach a log line, an error message or a traceback.
``mask`` hides it structurally (for showing a URL); ``redact`` scrubs it from any text (ffmpeg's
stderr, error messages), using the strings ``secrets_of`` names for a URL.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from .errors import LinlyPushError, UsageError

Kind = Literal["rtmp", "srt", "file"]
MASK = "****"
SCHEMES: dict[str, Kind] = {"rtmp": "rtmp", "rtmps": "rtmp", "srt": "srt"}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(url: str, env: Mapping[str, str] = os.environ) -> str:
    """Replace each ``${VAR}`` with its value from ``env``; a bare ``$`` is left alone."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if not env.get(name):
            raise UsageError(f"environment variable {name} is not set or empty (the URL uses ${{{name}}})")
        return env[name]

    return _VAR.sub(value, url)


def env_values(url: str, env: Mapping[str, str] = os.environ) -> list[str]:
    """The values that ``expand`` puts into ``url``: secrets by construction, wherever they land."""
    return [env[name] for name in _VAR.findall(url) if env.get(name)]


@contextlib.contextmanager
def redacting(secrets: Iterable[str]) -> Iterator[None]:
    """Re-raise any LinlyPushError from the block with ``secrets`` scrubbed from its message."""
    secrets = list(secrets)
    try:
        yield
    except LinlyPushError as exc:
        clean = redact(str(exc), secrets)
        if clean == str(exc):
            raise
        raise type(exc)(clean) from None


def _is_url(target: str) -> bool:
    return "://" in target


def kind(target: str) -> Kind:
    """"rtmp" (rtmp:// and rtmps://), "srt", or "file" for a path."""
    if not _is_url(target):
        return "file"
    scheme = target.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise UsageError(
            f"unsupported destination {mask(target)!r}: linly-push pushes to rtmp://, rtmps:// or srt:// "
            "(use 'linly-push render -o FILE' for files)"
        )
    return SCHEMES[scheme]


def _parts(url: str) -> tuple[str | None, str | None, str | None]:
    """The secret parts of a URL: password, key (the last path segment), query."""
    u = urlsplit(url)
    key = u.path.strip("/").split("/")[-1] or None
    return u.password or None, key, u.query or None


def mask(url: str) -> str:
    """The URL with its password, key segment, query and fragment shown as ****; paths unchanged."""
    if not _is_url(url):
        return url
    u = urlsplit(url)
    password, key, query = _parts(url)
    netloc = u.netloc
    if password:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{MASK}@{hostport}"
    path = u.path
    if key:
        path = path[: path.rstrip("/").rfind("/") + 1] + MASK + ("/" if path.endswith("/") else "")
    return urlunsplit((u.scheme, netloc, path, MASK if query else "", MASK if u.fragment else ""))


def secrets_of(url: str) -> list[str]:
    """What to scrub from text about ``url``: the whole URL, its key, query, password, fragment."""
    if not _is_url(url):
        return []
    password, key, query = _parts(url)
    fragment = urlsplit(url).fragment or None
    return [s for s in (url, key, query, password, fragment) if s]


def _forms(secret: str) -> set[str]:
    # ffmpeg and servers echo URLs both as given and percent-decoded.
    return {secret, unquote(secret), quote(secret, safe=""), quote(secret, safe=":/?&=@")}


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret (and its percent-encoded and decoded forms)
    replaced: a URL by its masked form, anything else by ****.

    Longest first, so a URL becomes ``rtmp://host/app/****`` before its key is looked for
    elsewhere; a key that also occurs in the host is scrubbed there too.
    """
    replacements: dict[str, str] = {}
    for secret in secrets:
        for form in _forms(secret):
            if form:
                replacements[form] = mask(secret) if _is_url(secret) else MASK
    for form in sorted(replacements, key=len, reverse=True):
        text = text.replace(form, replacements[form])
    return text
