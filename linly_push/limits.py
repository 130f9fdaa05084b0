"""What the process may use, and what its children may see.

- Open files: ``raise_open_files`` lifts the soft limit on descriptors to the hard one, for a
  program (the command line) to call at start; the library never changes it behind its caller.
- Environments: ffmpeg and ffprobe get only the variables they read (``ffmpeg_env``), so a
  stream key in a ``${VAR}``, the control token or any other secret of ours stays with us; a
  program the user named (the ``command`` TTS) gets the user's environment less our control
  token (``without_token``).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping

TOKEN_ENV = "LINLY_PUSH_CONTROL_TOKEN"  # the control API's bearer token (a secret)

# Where the hard limit is "unlimited" (macOS), a soft limit that high is refused: ask for this.
_UNLIMITED_SOFT = 65536


def raise_open_files() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit now in force.

    Many shells and services start with a soft limit of 1,024, while the hard limit allows far
    more: clients of the control API, pipes to each ffmpeg and recordings all hold descriptors.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = _UNLIMITED_SOFT if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (OSError, ValueError):  # refused (a sandbox): keep what we have
        return soft
    return want


def open_files_limit() -> int:
    """The soft limit on open descriptors."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# What ffmpeg and ffprobe read from the environment (the names in Debian's ffmpeg 5.1 and its
# GnuTLS, and in the imageio-ffmpeg wheel's static ffmpeg 9 with OpenSSL), and what finding
# their libraries and temporary files takes. Nothing else is passed on.
FFMPEG_ENV = frozenset({
    "PATH", "HOME", "TMPDIR", "TZ", "LANG", "LANGUAGE",
    "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH",  # a build of its own, in /opt
    "http_proxy", "https_proxy", "no_proxy",  # libavformat's HTTP (WHIP endpoints)
    "SSL_CERT_FILE", "SSL_CERT_DIR", "GNUTLS_SYSTEM_PRIORITY_FILE",  # rtmps, https
    "OPENSSL_CONF", "OPENSSL_CONF_INCLUDE", "OPENSSL_MODULES", "OPENSSL_ENGINES",
    "FFREPORT", "FFMPEG_DATADIR", "AV_LOG_FORCE_NOCOLOR", "AV_LOG_FORCE_COLOR", "AV_LOG_FORCE_256COLOR",
})
_FFMPEG_PREFIXES = ("LC_",)  # the locale


def ffmpeg_env(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment an ffmpeg or ffprobe child gets: ``FFMPEG_ENV`` and the locale only."""
    return {k: v for k, v in env.items() if k in FFMPEG_ENV or k.startswith(_FFMPEG_PREFIXES)}


def without_token(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The user's environment for a program the user named, less the control API's token."""
    return {k: v for k, v in env.items() if k != TOKEN_ENV}
