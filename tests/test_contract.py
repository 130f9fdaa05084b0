"""docs/contract.md against the code and real runs: exactly the exit codes in EXIT_CODES, exactly
the event kinds the library emits, and every field a real run prints documented with its type."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cli_run import linly, text
from linly_push import events
from linly_push.errors import EXIT_CODES

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "contract.md"
FAST = ["--preset", "local-test", "--set", "video.width=320", "--set", "video.height=180"]
COMMON = {"event", "time"}  # in every event


# -- reading the document ----------------------------------------------------------------------


def sections() -> dict[str, str]:
    """Heading text (backticks removed) -> the text under it, up to the next heading."""
    parts = re.split(r"^(#{2,3}) (.+)$", DOC.read_text(encoding="utf-8"), flags=re.M)
    return {title.strip().strip("`"): body for title, body in zip(parts[2::3], parts[3::3])}


def rows(body: str) -> list[list[str]]:
    """The cells of a Markdown table's body rows (``\\|`` inside a cell kept)."""
    out = []
    for line in body.splitlines():
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line):
            out.append([c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return out[1:] if out else []  # the first row is the header


def fields(body: str) -> dict[str, str]:
    """Field name -> documented type, from a section's table."""
    return {r[0].strip("`"): r[1] for r in rows(body)}


def event_sections() -> dict[str, dict[str, str]]:
    """Event kind -> its fields and types (the common ones included)."""
    s = sections()
    names = list(s)
    start, end = names.index("Events (`render --json`, `live --json`)"), names.index("probe --json")
    common = fields(s[names[start]])
    assert set(common) == COMMON
    return {name: {**common, **fields(s[name])} for name in names[start + 1 : end]}


def conforms(value: Any, documented: str) -> bool:
    """``value`` has the JSON type the document gives: integer, number, string, boolean, object,
    array (of ...), any; "or null" allows null."""
    if documented == "any" or (value is None and documented.endswith("or null")):
        return True
    kind = documented.removesuffix(" or null").split(" of ")[0]
    checks = {
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
    }
    return checks[kind](value)


# -- reading the code --------------------------------------------------------------------------


def emitted() -> dict[str, set[str] | None]:
    """Every event kind the library defines (one dataclass each, ``linly_push.events``) that the
    library or CLI constructs somewhere, with its fields."""
    constructed: set[str] = set()
    for path in (ROOT / "linly_push").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constructed |= {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return {
        kind: {f.name for f in dataclasses.fields(cls) if f.name != "time"}
        for kind, cls in events.KINDS.items()
        if cls.__name__ in constructed
    }


def check_events(lines: str) -> list[dict[str, Any]]:
    """Every line is a documented event with exactly its documented fields, of their types."""
    documented = event_sections()
    events = [json.loads(line) for line in lines.splitlines()]
    for e in events:
        assert e["event"] in documented, e
        want = documented[e["event"]]
        assert set(e) == set(want), (e["event"], set(e) ^ set(want))
        bad = {k: v for k, v in e.items() if not conforms(v, want[k])}
        assert bad == {}, (e["event"], bad)
    return events


def flatten(report: dict[str, Any]) -> dict[str, Any]:
    """probe's report as the document names its fields: ``video.fps``, ``checks[].ok``."""
    out = {}
    for key, value in report.items():
        out[key] = value
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                out.update({f"{key}[].{k}": v for k, v in item.items()})
    return out


# -- the tests ---------------------------------------------------------------------------------


def test_exit_codes_are_exactly_those_of_the_code():
    table = rows(sections()["Exit codes"])
    assert [int(r[0]) for r in table] == sorted(EXIT_CODES)
    assert all(r[2] and r[3] for r in table)  # when, and whether a retry helps


def test_every_emitted_event_kind_is_documented_and_nothing_else():
    assert set(emitted()) == set(event_sections())


def test_fields_written_out_in_the_code_are_documented_exactly():
    documented = event_sections()
    written = {kind: keys for kind, keys in emitted().items() if keys is not None}
    assert {"started", "sentence", "dropped", "reconnected", "finished", "error", "waiting"} <= set(written)
    for kind, keys in written.items():
        assert keys | COMMON == set(documented[kind]), kind


def test_a_render_prints_only_documented_events_and_probe_only_documented_fields(tmp_path):
    (tmp_path / "talk.txt").write_text("One sentence here. And a second one.", encoding="utf-8")
    out = tmp_path / "talk.mp4"
    r = linly("render", "--script", str(tmp_path / "talk.txt"), "-o", str(out), "--avatar", "testcard", "--json", *FAST)
    assert r.returncode == 0, text(r)
    kinds = [e["event"] for e in check_events(r.stdout.decode())]
    assert kinds[0] == "started" and kinds[-1] == "finished" and {"sentence", "progress"} <= set(kinds)

    r = linly("probe", str(out), "--sync", "--expect", "video.codec=h264", "--json")
    assert r.returncode == 0, text(r)
    report = flatten(json.loads(r.stdout))
    documented = fields(sections()["probe --json"])
    assert set(report) == set(documented), set(report) ^ set(documented)
    bad = {k: v for k, v in report.items() if not conforms(v, documented[k])}
    assert bad == {}


def test_a_failure_prints_one_documented_error_event(tmp_path):
    r = linly("render", "--script", str(tmp_path / "missing.txt"), "--json", *FAST)
    assert r.returncode == 3, text(r)
    [error] = check_events(r.stdout.decode())
    assert (error["event"], error["code"]) == ("error", 3)


@pytest.mark.live
def test_a_scheduled_live_run_prints_only_documented_events(rtmp_server, tmp_path):
    (tmp_path / "talk.txt").write_text("Live and on time.", encoding="utf-8")
    at = (datetime.now().astimezone() + timedelta(seconds=3)).isoformat(timespec="seconds")
    proc = subprocess.run(
        [sys.executable, "-m", "linly_push", "live", "--script", str(tmp_path / "talk.txt"), "--url", rtmp_server.url(),
         "--at", at, "--warmup", "1", "--duration", "3", "--json", *FAST],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    kinds = [e["event"] for e in check_events(proc.stdout)]
    assert kinds[:2] == ["waiting", "started"] and kinds[-1] == "finished"
    assert {"sentence", "status"} <= set(kinds)
