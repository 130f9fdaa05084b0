"""linly-push: scripted talking-avatar broadcasts, live over RTMP/SRT or rendered to a file."""

__version__ = "0.1.0"
