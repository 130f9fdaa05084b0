"""FFmpeg: finding the binary, building its command line (pure), and running it as the sink.

- ``binary``: which ffmpeg runs (``find_ffmpeg``) and that it has the encoders we need.
- ``argv``: the command line, by pure functions: encoder settings, containers, the tee and its fifos.
- ``diagnosis``: reading ffmpeg's log and progress reports: what failed, a hint, which output is up.
- ``preflight``: trials before going on air: the encoder settings (a dry run), each file output.
- ``sink``: ``FFmpegSink``, ffmpeg as a child process fed over two pipes, and its states.
"""

from .argv import build_argv, fifo_options
from .binary import FFmpegBinary, find_ffmpeg
from .diagnosis import Change, hint, last_error
from .preflight import check_encoder, check_file
from .sink import FFmpegSink

__all__ = [
    "Change",
    "FFmpegBinary",
    "FFmpegSink",
    "build_argv",
    "check_encoder",
    "check_file",
    "fifo_options",
    "find_ffmpeg",
    "hint",
    "last_error",
]
