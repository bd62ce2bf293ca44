"""Share your check results with the instructor's dashboard: opt in once, for this session.

    python -m workshop share --host 192.168.1.20 --name Ada     (make share HOST=192.168.1.20 NAME=Ada)
    python -m workshop share                                    (make share: is it on, and where to)
    python -m workshop share --off                              (make share OFF=1: stop)

From then on, each `make check`, `make watch` and `make progress` sends the instructor's machine
your chosen name, the step, and which of its checks pass: never your code, never a failure's
message. Also a seat number drawn at random here, so that two learners with the same name stay
two rows. The setting lives in .workshop-state/share.json (git ignores it); --off deletes it.

LAN only: the address must be on a private network. Your tools never wait for the instructor's
machine longer than SEND_SECONDS, and never fail because of it: a one-line note says it did not
answer, and the checks' own result stands.
"""

import argparse
import getpass
import ipaddress
import json
import os
import secrets
import socket
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

from workshop.steps import ROOT

SETTINGS_FILE = ROOT / ".workshop-state" / "share.json"
DEFAULT_PORT = (
    8002  # workshop/cockpit/server.py's DEFAULT_PORT (not imported: keep this light)
)
SEND_SECONDS = 1.0
# Set by `make progress` for the checks it runs: it sends one report for all steps itself.
SHARE_LATER = "WORKSHOP_SHARE_LATER"
MAX_NAME_LENGTH = 32


class ShareError(ValueError):
    """A setting make share refuses, with the reason."""


# --- the setting ------------------------------------------------------------------------


def settings(path: Path = SETTINGS_FILE) -> dict | None:
    """{"host", "port", "name", "seat"} once the learner opted in, else None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(data, dict)
        or not {"host", "port", "name", "seat"} <= data.keys()
    ):
        return None
    return data


def parse_address(text: str) -> tuple[str, int]:
    """'192.168.1.20' or '192.168.1.20:8002' or 'teacher.local' -> (host, port)."""
    text = text.strip().removeprefix("http://").rstrip("/")
    host, _, port_text = (
        text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    )
    if not host:
        raise ShareError("HOST is the instructor's address, such as 192.168.1.20.")
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise ShareError(f"{port_text!r} is not a port number.")
    if not 0 < port < 65536:
        raise ShareError(f"{port} is not a port number.")
    return host, port


def local_network_only(host: str) -> None:
    """LAN only: refuse an address on the Internet (a name is looked up first)."""
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            raise ShareError(
                f"{host} is not an address this machine can find: ask the instructor for "
                "the number their screen shows (such as 192.168.1.20)."
            )
        addresses = {
            ipaddress.ip_address(str(entry[4][0]).split("%")[0]) for entry in found
        }
    public = [
        str(a)
        for a in addresses
        if not (a.is_private or a.is_loopback or a.is_link_local)
    ]
    if public:
        raise ShareError(
            f"{host} ({', '.join(public)}) is not on a local network: progress is shared "
            "only with an instructor in the same room (LAN only)."
        )


def clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ShareError("NAME cannot be empty.")
    if len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise ShareError(f"NAME is at most {MAX_NAME_LENGTH} printable characters.")
    return name


def save(host: str, port: int, name: str, path: Path = SETTINGS_FILE) -> dict:
    earlier = settings(path) or {}
    data = {
        "host": host,
        "port": port,
        "name": name,
        "seat": earlier.get("seat") or secrets.token_hex(8),
    }
    path.parent.mkdir(exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return data


# --- sending ----------------------------------------------------------------------------


def where(setting: dict) -> str:
    return f"{setting['host']}:{setting['port']}"


def post(setting: dict, path: str, payload: dict | None, timeout: float) -> dict:
    """One request to the cockpit; raises OSError (or HTTPError) as urllib does."""
    url = f"http://{setting['host']}:{setting['port']}{path}"
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.load(answer)


def within(seconds: float, work) -> tuple[bool, object]:
    """(finished, result or exception) of work() run for at most `seconds` of wall time: a
    machine that accepts the connection and then never answers cannot hold the learner up."""
    outcome: list = []

    def attempt():
        try:
            outcome.append(work())
        except Exception as problem:  # noqa: BLE001 (reported as a note, never raised)
            outcome.append(problem)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(seconds)
    return (bool(outcome), outcome[0] if outcome else None)


def send(
    steps: list[dict], setting: dict | None = None, timeout: float = SEND_SECONDS
) -> str:
    """Report these steps' outcomes; returns the one line to print (or "" when not sharing).

    steps: [{"step": "4", "checks": {"test_...": "passed" | "failed" | "skipped"},
             "complete": True}]"""
    setting = setting if setting is not None else settings()
    if setting is None or not steps:
        return ""
    payload = {"seat": setting["seat"], "name": setting["name"], "steps": steps}
    # The wall-clock bound is within()'s; urllib's own (per socket operation) is a backstop.
    finished, result = within(
        timeout, lambda: post(setting, "/api/report", payload, 2 * timeout)
    )
    stop_hint = "(make share OFF=1 stops sharing)"
    if not finished or reason_of(result) == NO_ANSWER:
        return (
            f"Progress not shared: the instructor's machine ({where(setting)}) did not "
            f"answer within {timeout:g} s {stop_hint}."
        )
    if isinstance(result, urllib.error.HTTPError):
        try:
            reason = json.load(result).get("error", "")
        except (ValueError, AttributeError, OSError):
            reason = ""
        return (
            f"Progress not shared: the dashboard refused it ({reason or result.code})."
        )
    if isinstance(result, Exception):
        return (
            f"Progress not shared: nothing answers at {where(setting)} ({reason_of(result)}) "
            f"{stop_hint}."
        )
    counts = [
        f"{entry['step']}: {sum(o == 'passed' for o in entry['checks'].values())}"
        f"/{len(entry['checks'])}"
        for entry in steps
    ]
    return (
        f"Shared with the instructor as {setting['name']} (step {', '.join(counts)})."
    )


NO_ANSWER = "no answer in time"


def reason_of(problem) -> str:
    if not isinstance(problem, Exception):
        return ""
    if isinstance(problem, urllib.error.URLError):
        problem = problem.reason if isinstance(problem.reason, Exception) else problem
    if isinstance(problem, ConnectionRefusedError):
        return "is the instructor's dashboard running?"
    if isinstance(problem, TimeoutError | socket.timeout):
        return NO_ANSWER
    return str(problem) or type(problem).__name__


def outcomes_of_progress(results) -> list[dict]:
    """make progress's results (workshop/progress.py's CheckResults) as report entries."""
    from workshop.cockpit.board import checks_of

    steps = []
    for result in results:
        if result.problem:
            continue
        if (
            result.from_earlier_run
        ):  # passed before, unchanged since: every check passes
            checks = {check.name: "passed" for check in checks_of(result.step)}
        else:
            checks = combine(getattr(result, "outcomes", {}))
        if checks:
            steps.append({"step": result.step.key, "checks": checks, "complete": True})
    return steps


def combine(outcomes: dict[str, str]) -> dict[str, str]:
    """One outcome per check: test_x[a] and test_x[b] are the same check (a failure wins)."""
    rank = {"skipped": 0, "passed": 1, "failed": 2}
    combined: dict[str, str] = {}
    for name, outcome in outcomes.items():
        check = name.split("[", 1)[0]
        if rank[outcome] >= rank.get(combined.get(check, "skipped"), 0):
            combined[check] = outcome
    return combined


# --- the command ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host", help="the instructor's address (their screen shows it)"
    )
    parser.add_argument("--name", help="your name on the instructor's dashboard")
    parser.add_argument("--off", action="store_true", help="stop sharing")
    args = parser.parse_args(argv)
    current = settings()

    if args.off:
        SETTINGS_FILE.unlink(missing_ok=True)
        print("Sharing is off: your check results stay on this machine.")
        return 0
    if args.host is None:
        if args.name is not None and current:
            args.host = where(current)
        elif current:
            print(
                f"Sharing your check results with {where(current)} as {current['name']}."
            )
            print("make share OFF=1 stops; make share HOST=... NAME=... changes it.")
            return 0
        else:
            print(
                "Not sharing. To show your progress on the instructor's dashboard: "
                "make share HOST=<the address on the instructor's screen> NAME=<your name>"
            )
            return 0
    try:
        host, port = parse_address(args.host)
        local_network_only(host)
        name = clean_name(args.name or (current or {}).get("name") or ask_name())
    except ShareError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    setting = save(host, port, name)
    finished, answer = within(
        SEND_SECONDS * 2, lambda: post(setting, "/api/hello", None, SEND_SECONDS * 2)
    )
    print(
        f"Sharing as {name} with {where(setting)}: each make check, make watch and "
        "make progress sends your name, the step and which checks pass (never your code)."
    )
    if finished and isinstance(answer, dict) and answer.get("cockpit"):
        print("The instructor's dashboard answered. make share OFF=1 stops sharing.")
    else:
        print(
            f"Nothing answers at {where(setting)} yet (is the instructor's dashboard "
            "running?): your checks run as always and share once it answers."
        )
    return 0


def ask_name() -> str:
    """The name to show: asked in a terminal (the login name as the default)."""
    default = getpass.getuser()
    if not sys.stdin.isatty():
        return default
    typed = input(f"Your name on the instructor's dashboard [{default}]: ")
    return typed.strip() or default


if __name__ == "__main__":
    sys.exit(main())
