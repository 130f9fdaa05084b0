"""The deployment examples in examples/deploy/: run for real where this machine can (broadcast.sh,
the crontab line, the GitHub Actions step that broadcasts and probes, all against nginx-rtmp on
127.0.0.1), and parsed and checked where it cannot (Docker, Compose, Kubernetes, systemd).

Every linly-push command line in the examples goes through linly-push's own argument parser,
so a renamed flag breaks these tests, not a user's broadcast.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import zipfile
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import typer

from linly_push import presets
from linly_push.cli.app import app
from linly_push.errors import EXIT_CODES
from linly_push.rundown import load as load_rundown
from linly_push.schedule import parse_duration
from media_probe import probe
from optional import need

yaml = need("yaml", "test")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DEPLOY = EXAMPLES / "deploy"
K8S = DEPLOY / "k8s"
BROADCAST = DEPLOY / "broadcast.sh"
BIN = Path(sys.executable).parent  # where this environment's linly-push command lives
KEY = "sk-deploy-4c1e9a7b"  # must appear nowhere in what linly-push prints
SMALL = ["--set", "video.width=320", "--set", "video.height=180"]
SHORT_SHOW = '[[segment]]\nscript = "Hello from the deployment test."\n[[segment]]\npause = 0.5\n'
STEP = "Broadcast and probe the stream"  # the workflow step that is run for real


# -- helpers -----------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> dict[str, Any]:
    """What linly-push's parser makes of ``argv`` (a subcommand and its arguments); raises on an
    unknown flag or a bad value, exactly as the command line would."""
    name, *rest = argv
    command = typer.main.get_command(app).commands[name]
    return command.make_context(f"linly-push {name}", list(rest)).params


def broadcast_argv(tmp_path: Path, env: dict[str, str], *args: str) -> list[str]:
    """The linly-push arguments broadcast.sh builds from ``env`` and ``args`` (a stand-in
    LINLY_PUSH prints them instead of running)."""
    dump = tmp_path / "dump-argv"
    dump.write_text("#!/bin/sh\nprintf '%s\\0' \"$@\"\n")
    dump.chmod(0o755)
    run = subprocess.run(
        [str(BROADCAST), *args], env={"PATH": os.environ["PATH"], **env, "LINLY_PUSH": str(dump)},
        capture_output=True, text=True, timeout=30,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.split("\0")[:-1]


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def option(argv: list[str], flag: str) -> list[str]:
    """Every value given to ``flag`` in ``argv``."""
    return [value for name, value in zip(argv, argv[1:]) if name == flag]


CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
CRON_PART = re.compile(r"(\*|(\d+)(?:-(\d+))?)(?:/([1-9]\d*))?")


def cron_valid(schedule: str) -> bool:
    """Five numeric cron fields (*, N, N-M, lists, /steps), each within its range."""
    fields = schedule.split()
    if len(fields) != 5:
        return False
    for field, (low, high) in zip(fields, CRON_RANGES):
        for part in field.split(","):
            m = CRON_PART.fullmatch(part)
            if m is None or not all(low <= int(n) <= high for n in m.group(2, 3) if n is not None):
                return False
    return True


def minutes(clock: str) -> int:
    hours, mins = clock.split(":")[:2]
    return int(hours) * 60 + int(mins)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, quotes removed (what systemd's EnvironmentFile and broadcast.sh read)."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith(("#", ";")):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip("'\"")
    return out


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read(path)
    return parser


def workflow() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "github-actions.yml").read_text())


def step_script(name: str) -> str:
    [job] = workflow()["jobs"].values()
    return next(s["run"] for s in job["steps"] if s.get("name") == name)


def script_commands(script: str, program: str, env: dict[str, str]) -> list[list[str]]:
    """The ``program`` command lines in a shell script: continuations joined, ``$VAR``s filled in
    from ``env``, redirections and ``&`` left off."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] != [program]:
            continue
        end = next((i for i, w in enumerate(words) if w in {">", ">>", "&", "|", "&&", "||", ";"}), len(words))
        commands.append([re.sub(r"\$\{?(\w+)\}?", lambda m: env[m[1]], w) for w in words[1:end]])
    return commands


def k8s_documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def cronjobs() -> list[dict[str, Any]]:
    return [d for d in k8s_documents() if d["kind"] == "CronJob"]


def container(job: dict[str, Any]) -> dict[str, Any]:
    [c] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return c


def stop(proc: subprocess.Popen) -> None:
    """End a process group we started (the shell and what it ran), if it is still there."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- broadcast.sh --------------------------------------------------------------------------------


def test_broadcast_script_is_valid_bash():
    assert os.access(BROADCAST, os.X_OK)
    run = subprocess.run(["bash", "-n", str(BROADCAST)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "set -euo pipefail" in BROADCAST.read_text()


def test_broadcast_script_builds_a_live_command_from_the_environment(tmp_path):
    env = {
        "RUNDOWN": "/shows/news.toml", "PRESET": "hd", "AT": "20:00", "WARMUP": "60", "DURATION": "45m",
        "STREAM_URL": "rtmp://a.example/live/${STREAM_KEY} srt://b.example:9000?streamid=${SECOND}",
        "RECORD": "/var/lib/linly-push/show-%F.mkv",
    }
    days = {datetime.now().strftime("%F")}
    argv = broadcast_argv(tmp_path, env, "--loop", *SMALL)
    days.add(datetime.now().strftime("%F"))  # the same day, unless the call straddled midnight
    params = parse_args(argv)
    assert argv[0] == "live" and "--json" in argv
    assert str(params["rundown"]) == "/shows/news.toml" and params["preset"] == "hd"
    # The keys stay ${...} references: linly-push expands them, so it knows what to mask.
    assert params["url"] == ["rtmp://a.example/live/${STREAM_KEY}", "srt://b.example:9000?streamid=${SECOND}"]
    assert (params["at"], params["warmup"], params["duration"]) == ("20:00", 60.0, "45m")
    assert str(params["record"]) in {f"/var/lib/linly-push/show-{d}.mkv" for d in days}
    assert params["loop"] is True and params["sets"] == ["video.width=320", "video.height=180"]

    # Nothing optional set: no --url (linly-push falls back to LINLY_PUSH_URL), preset live.
    bare = broadcast_argv(tmp_path, {"RUNDOWN": "show.toml"})
    assert bare == ["live", "--rundown", "show.toml", "--preset", "live", "--json"]


def test_broadcast_script_reads_an_environment_file_literally_and_keeps_keys_out_of_errors(tmp_path):
    env_file = tmp_path / "broadcast.env"
    env_file.write_text(
        "# comment\n; another\n\nRUNDOWN=/srv/show.toml\n"
        "STREAM_URL='rtmp://ingest.example/live/${STREAM_KEY}'\n"
        'PRESET="mobile"\n  DURATION = 10m  \n'
    )
    argv = broadcast_argv(tmp_path, {}, "--env-file", str(env_file))
    params = parse_args(argv)
    assert params["url"] == ["rtmp://ingest.example/live/${STREAM_KEY}"]
    assert (str(params["rundown"]), params["preset"], params["duration"]) == ("/srv/show.toml", "mobile", "10m")

    env_file.write_text(f"RUNDOWN=/srv/show.toml\n{KEY}\n")  # a key pasted without a name
    run = subprocess.run([str(BROADCAST), "--env-file", str(env_file)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "line 2" in run.stderr and KEY not in run.stderr

    for args in ([], ["--env-file"], ["--env-file", str(tmp_path / "missing.env")]):
        run = subprocess.run([str(BROADCAST), *args], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
        assert run.returncode == 2 and run.stderr.startswith("broadcast.sh: error: "), (args, run.stderr)


def test_broadcast_script_exits_with_linly_push_code(tmp_path):
    env = {"PATH": f"{BIN}:{os.environ['PATH']}", "RUNDOWN": str(tmp_path / "missing.toml"), "STREAM_URL": "rtmp://127.0.0.1:1/live/x"}
    run = subprocess.run([str(BROADCAST)], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 3, run.stderr
    [error] = events(run.stdout)
    assert error["event"] == "error" and error["code"] == 3 and "rundown not found" in error["message"]


@pytest.mark.live
def test_broadcast_script_goes_on_air_and_logs_events(rtmp_server, tmp_path):
    (tmp_path / "show.toml").write_text(SHORT_SHOW)
    log = tmp_path / "events.jsonl"
    env = {
        "PATH": f"{BIN}:{os.environ['PATH']}", "RUNDOWN": str(tmp_path / "show.toml"), "PRESET": "local-test",
        "STREAM_URL": rtmp_server.url(key="${STREAM_KEY}"), "STREAM_KEY": KEY, "EVENTS_LOG": str(log),
    }
    run = subprocess.run([str(BROADCAST), *SMALL], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""  # the events went to EVENTS_LOG
    got = events(log.read_text())
    assert got[0]["event"] == "started" and got[-1]["event"] == "finished"
    assert got[0]["live"] is True and got[-1]["sentences"] == 1
    assert KEY not in log.read_text() + run.stderr
    assert ("publish", KEY) in rtmp_server.events()


@pytest.mark.live
def test_broadcast_script_ends_cleanly_on_sigterm_with_143(rtmp_server, tmp_path):
    """What systemd (KillSignal=SIGTERM, SuccessExitStatus=143), Docker and Kubernetes rely on:
    the script execs linly-push, so SIGTERM reaches it, and it closes the stream and exits 143."""
    (tmp_path / "show.toml").write_text(SHORT_SHOW)
    env = {
        "PATH": f"{BIN}:{os.environ['PATH']}", "RUNDOWN": str(tmp_path / "show.toml"), "PRESET": "local-test",
        "STREAM_URL": rtmp_server.url(key="${STREAM_KEY}"), "STREAM_KEY": KEY, "DURATION": "60",
    }
    proc = subprocess.Popen([str(BROADCAST), "--loop", *SMALL], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        rtmp_server.wait_for("publish", key=KEY, timeout=30)
        time.sleep(2.5)  # a keyframe or two on the server
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 143, err
    last = events(out)[-1]
    assert (last["event"], last["code"]) == ("error", 143)
    [recording] = rtmp_server.recordings()
    assert float(probe(recording).format["duration"]) > 1.0  # closed cleanly: playable


# -- cron ----------------------------------------------------------------------------------------


def cron_entry() -> tuple[dict[str, str], str, str]:
    """The crontab's variables, its one schedule and command."""
    variables, entries = {}, []
    for line in (DEPLOY / "crontab").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^[A-Z_]+=", line):
            key, _, value = line.partition("=")
            variables[key] = value
        else:
            entries.append(line)
    [entry] = entries
    fields = entry.split(None, 5)
    return variables, " ".join(fields[:5]), fields[5]


def test_crontab_runs_broadcast_daily_without_overlap():
    variables, schedule, command = cron_entry()
    assert cron_valid(schedule), schedule
    assert "%" not in command  # cron would turn it into a newline
    words = shlex.split(command)
    assert words[:2] == ["flock", "-n"] and "linly-push-broadcast" in words
    assert words[words.index("--env-file") + 1] == unit(DEPLOY / "linly-push.service")["Service"]["EnvironmentFile"]
    assert "/opt/linly-push/bin" in variables["PATH"].split(":")
    # With the example environment file, it starts before the show's warmup.
    env = read_env_file(DEPLOY / "broadcast.env")
    minute, hour = schedule.split()[:2]
    assert int(hour) * 60 + int(minute) <= minutes(env["AT"]) - float(env["WARMUP"]) / 60


@pytest.mark.live
def test_crontab_line_broadcasts_in_cron_bare_environment(rtmp_server, tmp_path):
    """The crontab's command, run as cron runs it: /bin/sh, no environment but the crontab's
    variables and HOME; only its file paths point into the test's folder."""
    variables, _, command = cron_entry()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "linly-push-broadcast").symlink_to(BROADCAST)
    (bin_dir / "linly-push").symlink_to(BIN / "linly-push")
    (tmp_path / "show.toml").write_text(SHORT_SHOW)
    (tmp_path / "small.toml").write_text("[video]\nwidth = 320\nheight = 180\n")
    (tmp_path / "broadcast.env").write_text(
        f"RUNDOWN={tmp_path / 'show.toml'}\nSTREAM_URL='{rtmp_server.url(key='${STREAM_KEY}')}'\n"
        f"STREAM_KEY={KEY}\nPRESET={tmp_path / 'small.toml'}\n"
    )
    log = tmp_path / "broadcast.log"
    command = command.replace("/etc/linly-push/broadcast.env", str(tmp_path / "broadcast.env"))
    command = command.replace("/var/log/linly-push/broadcast.log", str(log))
    env = {**variables, "PATH": variables["PATH"].replace("/opt/linly-push/bin", str(bin_dir)), "HOME": str(tmp_path)}

    first = subprocess.Popen([variables.get("SHELL", "/bin/sh"), "-c", command], env=env, cwd=tmp_path, start_new_session=True)
    try:
        rtmp_server.wait_for("publish", key=KEY, timeout=30)
        # The next day's start while this one still runs: flock skips it.
        second = subprocess.run([variables.get("SHELL", "/bin/sh"), "-c", command], env=env, cwd=tmp_path, timeout=30)
        assert second.returncode == 1
        assert first.wait(120) == 0, log.read_text()
    finally:
        stop(first)
    got = events(log.read_text())
    assert got[0]["event"] == "started" and got[-1]["event"] == "finished"
    assert rtmp_server.events().count(("publish", KEY)) == 1
    assert KEY not in log.read_text()


# -- systemd -------------------------------------------------------------------------------------


def test_systemd_service_and_timer():
    service = unit(DEPLOY / "linly-push.service")
    s = service["Service"]
    assert s["Type"] in {"exec", "simple"}
    assert s["ExecStart"].split()[0] == "/opt/linly-push/bin/linly-push-broadcast"
    assert s["EnvironmentFile"].startswith("/etc/")  # the key is read from a root-only file
    assert "/opt/linly-push/bin" in s["Environment"]
    assert s["KillSignal"] == "SIGTERM" and s["KillMode"] == "mixed"  # SIGTERM to linly-push alone
    assert "143" in s["SuccessExitStatus"].split()
    assert parse_duration(s["TimeoutStopSec"]) >= 10  # linly-push stops within 2 s of SIGTERM
    assert s["Restart"] == "on-failure"
    never = {int(c) for c in s["RestartPreventExitStatus"].split()}
    assert never == {2, 3, 6, 7} and never <= EXIT_CODES.keys()
    assert int(s["LimitNOFILE"]) >= 65536  # not systemd's soft 1,024 (issue 18)

    timer = unit(DEPLOY / "linly-push.timer")
    t = timer["Timer"]
    assert t["Persistent"] == "true" and t["Unit"] == "linly-push.service"
    assert timer["Install"]["WantedBy"] == "timers.target"
    # It fires before the example environment file's AT minus WARMUP.
    env = read_env_file(DEPLOY / "broadcast.env")
    fires = minutes(t["OnCalendar"].split()[-1])
    assert fires <= minutes(env["AT"]) - float(env["WARMUP"]) / 60


def test_systemd_environment_file_makes_a_valid_command(tmp_path):
    argv = broadcast_argv(tmp_path, {}, "--env-file", str(DEPLOY / "broadcast.env"))
    params = parse_args(argv)
    env = read_env_file(DEPLOY / "broadcast.env")
    assert params["url"] == [env["STREAM_URL"]] and "${STREAM_KEY}" in env["STREAM_URL"]
    assert env["STREAM_KEY"] == ""  # no key in the example: linly-push refuses to start (exit 2)
    assert parse_duration(params["duration"]) == 3600
    assert str(params["record"]).startswith("/var/lib/linly-push/")  # the unit's StateDirectory


def test_systemd_units_pass_systemd_analyze(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # A root holding the units, the script where ExecStart says, and systemd's own units.
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "opt/linly-push/bin").mkdir(parents=True)
    shutil.copy(BROADCAST, root / "opt/linly-push/bin/linly-push-broadcast")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for name in ("linly-push.service", "linly-push.timer"):
        shutil.copy(DEPLOY / name, root / "etc/systemd/system" / name)
    units = ["/etc/systemd/system/linly-push.service", "/etc/systemd/system/linly-push.timer"]
    run = subprocess.run([analyze, "verify", f"--root={root}", *units], capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout + run.stderr) == (0, "")  # warnings (unknown keys, bad values) too
    calendar = unit(DEPLOY / "linly-push.timer")["Timer"]["OnCalendar"]
    assert subprocess.run([analyze, "calendar", calendar], capture_output=True, timeout=30).returncode == 0


def test_the_control_channel_unit_runs_until_stopped():
    s = unit(DEPLOY / "linly-push-channel.service")["Service"]
    argv = shlex.split(s["ExecStart"].replace("\\\n", " "))
    assert argv[0] == "/opt/linly-push/bin/linly-push"
    params = parse_args(argv[1:])  # every flag as the command line reads it
    assert params["control"] == "127.0.0.1:8750" and params["script"] is None  # idles until told
    # systemd's "$$" is a literal "$": linly-push gets ${STREAM_KEY} and expands it itself.
    assert params["url"] == ["rtmp://ingest.example/live/$${STREAM_KEY}"]
    assert "143" in s["SuccessExitStatus"].split() and s["Restart"] == "on-failure"
    assert s["EnvironmentFile"].startswith("/etc/")
    assert int(s["LimitNOFILE"]) >= 65536  # each control client holds a descriptor (issue 18)


# -- Docker and Compose --------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    return [(m[1].upper(), m[2]) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.M) if not m[0].lstrip().startswith("#")]


def test_dockerfile_installs_ffmpeg_and_runs_linly_push_unprivileged():
    steps = dockerfile()
    assert steps[0][0] == "FROM" and steps[0][1].startswith("python:3.11-slim")
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert re.search(r"apt-get install [^&]*\bffmpeg\b", runs)
    assert re.search(r"pip install [^&]*/src", runs)
    [user] = [args for op, args in steps if op == "USER"]
    assert user.split(":")[0] not in {"0", "root"}
    [entry] = [args for op, args in steps if op == "ENTRYPOINT"]
    assert json.loads(entry) == ["linly-push"]
    [copy] = [args.split() for op, args in steps if op == "COPY"]
    source, target = copy[-2:]
    assert (ROOT / source).resolve() == BROADCAST
    # The Kubernetes CronJobs run the script under the name the image gives it.
    assert {container(j)["command"][0] for j in cronjobs()} == {Path(target).name}


def test_a_plain_pip_install_ships_the_presets(tmp_path):
    """The Dockerfile and the workflow install with `pip install .`, not `-e .`: the wheel must
    carry the built-in presets, or `--preset live` is unknown there."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("linly_push-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"linly_push/builtin_presets/{p.name}" for p in (ROOT / "presets").glob("*.toml")} <= names
    assert len([n for n in names if n.startswith("linly_push/builtin_presets/")]) == 4


def test_docker_build_context_keeps_what_the_install_needs():
    patterns = [p for p in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    preset = (presets.PRESET_DIR / "live.toml").resolve().relative_to(ROOT)
    needed = ["pyproject.toml", "README.md", "linly_push/cli/app.py", str(preset), "examples/deploy/broadcast.sh"]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(Path(p).match(pattern.removeprefix("**/")) for p in prefixes for pattern in patterns)

    assert [p for p in needed if ignored(p)] == []
    assert ignored(".git") and ignored("tests/test_cli.py")


def test_compose_runs_srs_and_a_valid_linly_push_command():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    srs, push = compose["services"]["srs"], compose["services"]["linly-push"]
    assert srs["image"] == "ossrs/srs:5"
    assert {"1935:1935", "1985:1985", "8080:8080"} <= set(srs["ports"])
    assert (DEPLOY / push["build"]["context"] / push["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert "srs" in push["depends_on"]
    # Compose turns $$ into $: linly-push gets a ${STREAM_KEY} reference and expands it itself.
    argv = [w.replace("$$", "$") for w in push["command"]]
    params = parse_args(argv)
    assert params["url"] == ["rtmp://srs/live/${STREAM_KEY}"]
    assert "STREAM_KEY" in push["environment"]
    # The rundown is in the mounted folder.
    [volume] = push["volumes"]
    source, target = volume.split(":")[:2]
    inside = Path(str(params["rundown"])).relative_to(target)
    assert (DEPLOY / source / inside).resolve() == EXAMPLES / "show.toml"


# -- GitHub Actions ------------------------------------------------------------------------------


def test_actions_workflow_uses_srs_and_valid_commands():
    wf = workflow()
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "push" in triggers and "workflow_dispatch" in triggers
    [job] = wf["jobs"].values()
    srs = job["services"]["srs"]
    assert srs["image"] == "ossrs/srs:5" and "1935:1935" in srs["ports"]
    uses = [s.get("uses", "") for s in job["steps"]]
    assert any(u.startswith("actions/checkout@") for u in uses) and any(u.startswith("actions/setup-python@") for u in uses)
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert re.search(r"apt-get install [^&]*\bffmpeg\b", runs) and "pip install ." in runs

    live, check = script_commands(step_script(STEP), "linly-push", job["env"])
    live_params, probe_params = parse_args(live), parse_args(check)
    assert live[0] == "live" and live_params["preset"] == "local-test"
    assert live_params["url"] == [job["env"]["STREAM_URL"]] and job["env"]["STREAM_URL"].startswith("rtmp://127.0.0.1:1935/")
    assert check[0] == "probe" and probe_params["target"] == job["env"]["STREAM_URL"]
    assert probe_params["expect"] == ["preset=local-test"]
    # The stream lasts long enough for the probe to read what it asks for.
    assert parse_duration(live_params["duration"]) >= probe_params["seconds"] + 8


@pytest.mark.live
@pytest.mark.slow
def test_actions_step_broadcasts_and_probes_for_real(rtmp_server, tmp_path):
    """The workflow's broadcast-and-probe step, run as GitHub runs it (bash -eo pipefail), with
    nginx-rtmp on 127.0.0.1 standing in for the SRS service container."""
    (tmp_path / "examples").symlink_to(EXAMPLES)  # the checkout
    script = tmp_path / "step.sh"
    script.write_text(step_script(STEP))
    [job] = workflow()["jobs"].values()
    key = job["env"]["STREAM_URL"].rsplit("/", 1)[1]
    env = {"PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(tmp_path), "STREAM_URL": rtmp_server.url(key=key)}
    proc = subprocess.Popen(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=180)
    finally:
        stop(proc)
    assert proc.returncode == 0, out
    report = json.loads((tmp_path / "probe.json").read_text())
    assert report["ok"] is True and report["live"] is True
    assert [c for c in report["checks"] if c["ok"] is False] == []
    assert (report["video"]["width"], report["video"]["height"]) == (960, 540)
    got = events((tmp_path / "events.jsonl").read_text())
    assert got[0]["event"] == "started" and got[-1]["event"] == "finished"
    assert ("play", key) in rtmp_server.events()


# -- Kubernetes ----------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_but_the_secret_template():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == manifests - {"stream-keys.example.yaml"}
    [image] = kustomization["images"]
    assert {container(j)["image"] for j in cronjobs()} == {image["name"]}


def test_secret_template_holds_no_key():
    [secret] = [d for d in yaml.safe_load_all((K8S / "stream-keys.example.yaml").read_text()) if d]
    assert secret["kind"] == "Secret"
    assert all(v.startswith("REPLACE") for v in secret["stringData"].values())


def test_cronjobs_run_one_broadcast_at_a_time_and_stop_cleanly():
    jobs = cronjobs()
    assert len({j["metadata"]["name"] for j in jobs}) == len(jobs) >= 2
    for j in jobs:
        spec = j["spec"]
        job = spec["jobTemplate"]["spec"]
        pod = job["template"]["spec"]
        name = j["metadata"]["name"]
        assert cron_valid(spec["schedule"]), name
        assert spec["concurrencyPolicy"] == "Forbid", name
        assert isinstance(job["backoffLimit"], int) and job["activeDeadlineSeconds"] > 0, name
        assert pod["restartPolicy"] == "Never", name
        assert pod["terminationGracePeriodSeconds"] >= 10, name  # linly-push stops within 2 s
        # Exit codes a retry cannot fix (or must not: 7 aired the show) end the Job at once; 4 and 5 are retried.
        [rule] = job["podFailurePolicy"]["rules"]
        codes = set(rule["onExitCodes"]["values"])
        assert rule["action"] == "FailJob" and codes == {2, 3, 6, 7} and codes <= EXIT_CODES.keys(), name
        assert rule["onExitCodes"]["containerName"] == container(j)["name"], name
        limit = j["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
        env = {e["name"]: e.get("value") for e in container(j)["env"]}
        if env.get("DURATION"):
            assert parse_duration(env["DURATION"]) + float(env.get("WARMUP") or 0) < limit, name


def test_cronjobs_take_keys_from_secrets_and_build_valid_commands(tmp_path):
    shows = next(d for d in k8s_documents() if d["kind"] == "ConfigMap")
    for j in cronjobs():
        c = container(j)
        name = j["metadata"]["name"]
        env = {e["name"]: e for e in c["env"]}
        secret_vars = {n for n, e in env.items() if "secretKeyRef" in e.get("valueFrom", {})}
        referenced = set(re.findall(r"\$\{(\w+)\}", env["STREAM_URL"]["value"]))
        assert referenced and referenced <= secret_vars, name  # every key from a Secret...
        assert not any("KEY" in n and "value" in e for n, e in env.items()), name  # ...none inline
        # What the pod runs: broadcast.sh with this environment (secret values stood in for).
        values = {n: e.get("value", "stand-in") for n, e in env.items()}
        params = parse_args(broadcast_argv(tmp_path, values))
        assert params["url"] == env["STREAM_URL"]["value"].split()
        # The rundown is a key of the mounted ConfigMap, and it loads.
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        rundown = Path(str(params["rundown"]))
        volumes = {v["name"]: v for v in j["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]}
        assert volumes[mounts[str(rundown.parent)]]["configMap"]["name"] == shows["metadata"]["name"], name
        show = tmp_path / rundown.name
        show.write_text(shows["data"][rundown.name], encoding="utf-8")
        assert load_rundown(show, presets.load(params["preset"])).program, name
        if "AT" in values:  # the Job starts before the warmup, even at its starting deadline
            minute, hour = j["spec"]["schedule"].split()[:2]
            start = int(hour) * 60 + int(minute)
            late = j["spec"]["startingDeadlineSeconds"] / 60
            assert start + late <= minutes(values["AT"]) - float(values["WARMUP"]) / 60, name
            assert values["TZ"] == j["spec"]["timeZone"], name


def test_kustomize_builds_the_manifests():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    run = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    built = [d for d in yaml.safe_load_all(run.stdout) if d]
    image = yaml.safe_load((K8S / "kustomization.yaml").read_text())["images"][0]
    for j in (d for d in built if d["kind"] == "CronJob"):
        assert j["metadata"]["namespace"] == "broadcast"
        assert container(j)["image"] == f"{image['newName']}:{image['newTag']}"


# -- the sample rundown ------------------------------------------------------------------------


def test_sample_rundown_loads_with_its_files():
    show = load_rundown(EXAMPLES / "show.toml", presets.load("local-test"))
    assert show.title == "Evening briefing" and len(show.program) > 10
