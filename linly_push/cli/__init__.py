"""The command line (placeholder until the CLI lands)."""


def main() -> None:  # pragma: no cover
    raise SystemExit("linly-push CLI not built yet")
