"""Output URLs: expanding ${VAR}, checking them, telling outputs apart, and keeping stream keys
out of text.

A stream key is a password: it must never reach a log line, an error message or a traceback.
``target`` turns what the user wrote into a ``Target``: the URL ffmpeg is given, and the form
people see, in which every value substituted from the environment is masked where it stands,
before the key parts (last path segment, query, password) are masked as well. A ``Redactor``
scrubs text (ffmpeg's stderr, error messages): each URL becomes its shown form, and each secret
(whole, or a piece of an environment value between URL delimiters) becomes ****, wherever it
stands as a whole word: a short key never turns "exited" into "e****ited".
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from .errors import LinlyPushError, UsageError

Kind = Literal["rtmp", "srt", "whip", "file"]
MASK = "****"
# An http(s) URL is a WHIP endpoint (WebRTC ingest, RFC 9725), as OBS and ffmpeg take it.
SCHEMES: dict[str, Kind] = {"rtmp": "rtmp", "rtmps": "rtmp", "srt": "srt", "http": "whip", "https": "whip"}

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
def redacting(secrets: Redactor | Iterable[str]) -> Iterator[None]:
    """Re-raise any LinlyPushError from the block with ``secrets`` scrubbed from its message."""
    scrub = secrets if isinstance(secrets, Redactor) else Redactor(secrets=secrets)
    try:
        yield
    except LinlyPushError as exc:
        clean = scrub(str(exc))
        if clean == str(exc):
            raise
        raise type(exc)(clean) from None


def _is_url(target: str) -> bool:
    return "://" in target


def kind(target: str) -> Kind:
    """"rtmp" (rtmp:// and rtmps://), "srt", "whip" (http:// and https://), or "file" for a path."""
    if not _is_url(target):
        return "file"
    scheme = target.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise UsageError(
            f"unsupported destination {mask(target)!r}: linly-push pushes to rtmp://, rtmps://, srt://,"
            " or a WHIP endpoint at http(s):// (use 'linly-push render -o FILE' for files)"
        )
    return SCHEMES[scheme]


def check(url: str, shown: str | None = None) -> None:
    """UsageError unless ``url`` is one ffmpeg can push to: a known scheme, a host, a valid port;
    for RTMP an application and a stream key in the path, for SRT a port, for WHIP a path. ``shown`` is how to name it in errors."""
    where = shown or mask(url)
    what = kind(url)
    if what == "file":
        return
    try:
        u = urlsplit(url)
        port = u.port  # ValueError when it is not a number from 0 to 65535
    except ValueError as exc:
        raise UsageError(f"{where!r} is not a valid URL: {exc}") from None
    if not u.hostname:
        example = "127.0.0.1:1985/rtc/v1/whip/?app=live&stream=test" if what == "whip" else "127.0.0.1/live/test"
        raise UsageError(f"{where!r} has no host: write {u.scheme}://HOST/... (e.g. {u.scheme}://{example})")
    if what == "rtmp" and not u.path.strip("/"):
        raise UsageError(f"{where!r} has no application and stream key: write {u.scheme}://HOST/APP/KEY")
    if what == "rtmp" and len([s for s in u.path.split("/") if s]) < 2:
        # ffmpeg would take the one segment as both (rtmp://host/KEY: application KEY, stream KEY),
        # which servers refuse: retried for minutes instead of said at once.
        raise UsageError(
            f"{where!r} has one path segment, but RTMP needs an application and a stream key:"
            f" write {u.scheme}://HOST/APP/KEY (e.g. {u.scheme}://127.0.0.1/live/test)"
        )
    if what == "srt" and port is None:
        raise UsageError(f"{where!r} has no port: SRT needs one, e.g. srt://HOST:9000?streamid=...")
    if what == "whip" and not u.path.strip("/"):
        raise UsageError(
            f"{where!r} has no path: give the WHIP endpoint's whole URL,"
            " e.g. http://HOST:1985/rtc/v1/whip/?app=live&stream=NAME for SRS"
        )


def _is_whip(url: str) -> bool:
    return SCHEMES.get(url.split("://", 1)[0].lower()) == "whip"


def _token_like(segment: str) -> bool:
    """A path segment of a WHIP URL that may be a key: long, or letters and digits mixed."""
    return len(segment) >= 16 or (len(segment) >= 8 and any(c.isdigit() for c in segment) and any(c.isalpha() for c in segment))


def _parts(url: str) -> tuple[str | None, str | None, str | None]:
    """The secret parts of a URL: password, key, query. The key is the last path segment, but
    for WHIP, whose URLs end in a fixed word ("whip", "publish") and may carry a key in the
    middle (Cloudflare's .../KEY/webRTC/publish), every segment that looks like one."""
    try:
        u = urlsplit(url)
        password = u.password
    except ValueError:  # malformed (e.g. an unclosed "[" for IPv6): its whole tail may be a key
        return None, url.split("://", 1)[-1] or None, None
    segments = u.path.strip("/").split("/")
    if _is_whip(url):
        key = "/".join(s for s in segments if _token_like(s)) or None
    else:
        key = segments[-1] or None
    return password or None, key, u.query or None


def _masked_path(url: str, path: str, key: str | None) -> str:
    if not key:
        return path
    if _is_whip(url):
        return "/".join(MASK if _token_like(s) else s for s in path.split("/"))
    return path[: path.rstrip("/").rfind("/") + 1] + MASK + ("/" if path.endswith("/") else "")


def mask(url: str) -> str:
    """The URL with its password, key segment, query and fragment shown as ****; paths unchanged."""
    if not _is_url(url):
        return url
    try:
        u = urlsplit(url)
    except ValueError:
        return f"{url.split('://', 1)[0]}://{MASK}"
    password, key, query = _parts(url)
    netloc = u.netloc
    if password:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{MASK}@{hostport}"
    path = _masked_path(url, u.path, key)
    shown = urlunsplit((u.scheme, netloc, path, MASK if query else "", MASK if u.fragment else ""))
    return shown if "://" in shown else f"{u.scheme}://{shown.partition(':')[2]}"  # "rtmp://" stays so


def secrets_of(url: str) -> list[str]:
    """What to scrub from text about ``url``: the whole URL, its key, query, password, fragment."""
    if not _is_url(url):
        return []
    password, key, query = _parts(url)
    try:
        fragment = urlsplit(url).fragment or None
    except ValueError:
        fragment = None
    keys = key.split("/") if key and _is_whip(url) else [key]
    return [s for s in (url, *keys, query, password, fragment) if s]


@dataclass(frozen=True)
class Target:
    """A destination: ``url`` as ffmpeg gets it (``${VAR}``s expanded), ``shown`` as people see
    it, and ``secrets``, the strings never to show: each environment value and the key parts."""

    url: str
    shown: str
    secrets: tuple[str, ...] = ()
    pieces: tuple[str, ...] = ()  # parts of environment values, between URL delimiters

    @classmethod
    def plain(cls, url: str) -> Target:
        """A URL or path written out in full, without ``${VAR}``s."""
        return cls(url, mask(url), tuple(secrets_of(url)[1:]), _query_values(url))


def target(raw: str, env: Mapping[str, str] = os.environ) -> Target:
    """What the user wrote (``${VAR}``s and all) as a checked Target. UsageError for a variable
    that is not set or a URL that cannot work, naming it masked."""
    values = env_values(raw, env)
    scrub = Redactor(secrets=values, pieces=_pieces(values))
    with redacting(scrub):
        url = expand(raw, env)
    # The values are masked where they stand first, so none of one shows even where the key
    # parts below would not reach (a host, an app name, a key with "/" in it).
    shown = mask(_VAR.sub(MASK, raw)) if _is_url(raw) else scrub(raw)
    found = Target(url, shown, (*values, *secrets_of(url)[1:]), (*_pieces(values), *_query_values(url)))
    check(url, shown)
    return found


_DELIMITERS = re.compile(r"[/?#&=@:;\s]+")
MIN_PIECE = 3  # shorter pieces of a value are ordinary words too often to mask on their own


def _pieces(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(p for v in values for p in _DELIMITERS.split(v) if len(p) >= MIN_PIECE and p != v)


def _query_values(url: str) -> tuple[str, ...]:
    """The values of a URL's query (``streamid=...&passphrase=...``): each a secret of its own."""
    _, _, query = _parts(url) if _is_url(url) else (None, None, None)
    found = (item.partition("=")[2] for item in (query or "").split("&"))
    return tuple(v for v in found if len(v) >= MIN_PIECE)


def _forms(secret: str) -> set[str]:
    # ffmpeg and servers echo URLs both as given and percent-decoded.
    return {f for f in (secret, unquote(secret), quote(secret, safe=""), quote(secret, safe=":/?&=@")) if f}


class Redactor:
    """Scrubs text of everything secret about some targets (and further secret strings).

    Each form of a target's URL becomes its shown form; then each secret, and each piece of an
    environment value, becomes **** where it stands as a whole word (not inside a longer run of
    letters, digits, "_" and "-"), in every percent-encoded and decoded form, longest first.
    """

    def __init__(self, targets: Iterable[Target] = (), secrets: Iterable[str] = (), pieces: Iterable[str] = ()) -> None:
        targets = list(targets)
        self.targets = {t.url: t for t in targets}
        self._shown: dict[str, str] = {}
        words: set[str] = set(pieces)
        for t in targets:
            for form in _forms(t.url):
                self._shown.setdefault(form, t.shown)
            words |= {*t.secrets, *t.pieces}
        for secret in secrets:
            if _is_url(secret):
                for form in _forms(secret):
                    self._shown.setdefault(form, mask(secret))
                words |= {*secrets_of(secret)[1:], *_query_values(secret)}
            else:
                words.add(secret)
        self._urls = sorted(self._shown, key=len, reverse=True)
        forms = sorted({f for w in words for f in _forms(w)}, key=len, reverse=True)
        self._words = (
            re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, forms)) + r")(?![\w-])") if forms else None
        )

    def show(self, url: str) -> str:
        """How to show ``url``: a known target's shown form, else masked and scrubbed."""
        found = self.targets.get(url)
        return found.shown if found is not None else self(mask(url))

    def __call__(self, text: str) -> str:
        for form in self._urls:
            text = text.replace(form, self._shown[form])
        return self._words.sub(MASK, text) if self._words is not None else text


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret scrubbed: a URL shown masked, anything else as ****, where it
    stands as a whole word (see ``Redactor``)."""
    return Redactor(secrets=secrets)(text)
