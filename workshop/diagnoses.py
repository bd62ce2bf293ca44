"""What the checks say when something hangs or the server logs an error: the cause, in words.

Two kinds of evidence, both from the learner's own code:

- Where each thread waits. For a call made in the checks' process (step 2), the thread's frames; for the
  server, the stacks Python's faulthandler writes when the harness sends it SIGUSR1 (the harness starts
  every server with workshop/server_site/sitecustomize.py, which arranges it). A thread that waits at a
  `with some_lock:` line while an outer frame of its own is inside `with some_lock:` waits for itself:
  a threading.Lock is not re-entrant.
- What the server logged. Cello logs a failed handler as `[cello] WebSocket handler error: Type: text`
  or `[cello] 500 GET /users: Handler error: ...`, never with a "Traceback"; a thread that dies prints a
  Python traceback. KNOWN_ERRORS adds the guide section that explains a message we know.
"""

import ast
import functools
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

# Where the guide explains a lock taken twice.
LOCK_TAKEN_TWICE = "step2.md#the-client-store"

# A server log line that reports a problem: every line Cello prefixes with "[cello] " does (a
# handler error, a 500, a failed upgrade), and so do Python's own reports of a dying thread.
PROBLEM_LINE = re.compile(r"^(\[cello\] .*|Exception in thread .*)$")
TRACEBACK_START = "Traceback (most recent call last):"

# Log messages whose cause the guide explains: (pattern, what it means, guide section). A chapter
# adds the errors its pitfall boxes quote.
KNOWN_ERRORS = [
    (
        r"dictionary changed size during iteration",
        "Another handler thread added or removed someone while this code looped over "
        "`clients`: read it only under clients_lock, and loop over a copy.",
        "step4.md#broadcast",
    ),
    (
        r"blocks and cannot be called from a coroutine",
        "An `async def` handler may not call a blocking method such as ws.recv or "
        "ws.send_text: `await ws.arecv(...)`, and send through the outboxes.",
        "room.md#async-handler",
    ),
    (
        r"builtin_function_or_method|'WebSocketMessage' object",
        "The message's text is `msg.content`; `msg.text` is a constructor.",
        "step3.md#read-the-message",
    ),
]


@dataclass(frozen=True)
class Frame:
    file: str
    line: int
    function: str


def frames_of_thread(ident: int) -> list[Frame]:
    """A live thread of this process, innermost frame first."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return []
    return [
        Frame(summary.filename, summary.lineno or 0, summary.name)
        for summary in reversed(traceback.extract_stack(frame))
    ]


def parse_faulthandler(text: str) -> list[list[Frame]]:
    """Every thread of a faulthandler dump, each innermost frame first."""
    threads: list[list[Frame]] = []
    current: list[Frame] | None = None
    for line in text.splitlines():
        if re.match(r"^(Current thread|Thread) 0x[0-9a-f]+", line):
            current = []
            threads.append(current)
        elif current is not None and (
            found := re.match(r'^\s+File "(.+)", line (\d+) in (\S+)', line)
        ):
            current.append(Frame(found[1], int(found[2]), found[3]))
    return threads


@functools.lru_cache(maxsize=64)
def _source(path: str, stamp: float) -> tuple[list[str], ast.Module | None]:
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    try:
        return text.splitlines(), ast.parse(text)
    except SyntaxError:
        return text.splitlines(), None


def source(path: str) -> tuple[list[str], ast.Module | None]:
    try:
        return _source(path, Path(path).stat().st_mtime)
    except OSError:
        return [], None


def code_at(frame: Frame) -> str:
    lines, _ = source(frame.file)
    return lines[frame.line - 1].strip() if 0 < frame.line <= len(lines) else ""


def lock_waited_for(frame: Frame) -> str | None:
    """The lock a frame stands at: `with clients_lock:` or `clients_lock.acquire()`."""
    found = re.match(
        r"(?:with\s+([\w.]+)\s*(?:as \w+)?\s*:|([\w.]+)\.acquire\()", code_at(frame)
    )
    if not found:
        return None
    return found[1] or found[2]


def holds(frame: Frame, lock: str) -> bool:
    """Whether the frame's line lies inside a `with <lock>:` block of its function."""
    try:
        stamp = Path(frame.file).stat().st_mtime
    except OSError:
        return False
    return frame.line in _lines_holding(frame.file, stamp, lock)


@functools.lru_cache(maxsize=256)
def _lines_holding(path: str, stamp: float, lock: str) -> frozenset[int]:
    _, tree = _source(path, stamp)
    lines: set[int] = set()
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.With) and any(
            ast.unparse(item.context_expr) == lock for item in node.items
        ):
            lines.update(range(node.body[0].lineno, (node.end_lineno or 0) + 1))
    return frozenset(lines)


def place(frame: Frame) -> str:
    return f"{Path(frame.file).name}, line {frame.line}: `{code_at(frame)}`"


def where(frame: Frame) -> str:
    return f"{frame.function} ({place(frame)})"


def learner_frames(frames: list[Frame], app_dir: Path) -> list[Frame]:
    """The frames in the learner's files (app.py, messages.py, ...), innermost first."""
    folder = str(Path(app_dir).resolve())
    return [f for f in frames if str(Path(f.file).resolve()).startswith(folder)]


def explain_wait(threads: list[list[Frame]], app_dir: Path) -> str | None:
    """Why the learner's code waits forever, when a stack shows it for certain (a thread that
    waits for a lock it holds itself); else None. A thread that waits for a lock another one
    holds may just be waiting its turn: a snapshot cannot tell, so that is no diagnosis."""
    for frames in (learner_frames(f, app_dir) for f in threads):
        lock = lock_waited_for(frames[0]) if frames else None
        holder = lock and next((f for f in frames[1:] if holds(f, lock)), None)
        if holder:
            return (
                f"{where(frames[0])} waits for {lock}, which {holder.function} already "
                f"holds ({Path(holder.file).name}, line {holder.line}). A "
                "threading.Lock is not re-entrant: a thread that asks again for a lock it "
                "holds waits for itself, forever, and so does everyone after it."
            )
    return None


def waiting_for_input(threads: list[list[Frame]], app_dir: Path) -> Frame | None:
    """Where the handlers wait, when every thread running the learner's code waits for a
    participant's next message (ws.recv): the server then has nothing more to send. None
    while any of them does something else (sends, sleeps until the next ping, ...)."""
    innermost = [mine[0] for f in threads if (mine := learner_frames(f, app_dir))]
    receiving = [f for f in innermost if re.search(r"\.a?recv\(", code_at(f))]
    return receiving[0] if receiving and len(receiving) == len(innermost) else None


def problem_lines(text: str) -> list[str]:
    """The problems a server's output reports, one line each: Cello's "[cello] ..." lines, and
    each Python traceback as its last line (with the learner's line where it shows one)."""
    problems, lines = [], text.splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        if line.startswith(TRACEBACK_START):
            end = number + 1
            while end < len(lines) and (
                lines[end].startswith((" ", "\t")) or not lines[end].strip()
            ):
                end += 1
            problems.append(condensed_traceback(lines[number : end + 1]))
            number = end + 1
            continue
        if PROBLEM_LINE.match(line) and not line.startswith("Exception in thread"):
            problems.append(line)
        number += 1
    return problems


def condensed_traceback(block: list[str]) -> str:
    """A Python traceback as one line: its last line, and where in the learner's files."""
    last = next((line for line in reversed(block) if line.strip()), "")
    places = re.findall(r'File "(.+?)", line (\d+)', "\n".join(block))
    mine = [
        (path, number)
        for path, number in places
        if "site-packages" not in path
        and not path.startswith(sys.base_prefix)
        and "/workshop/" not in path.replace("\\", "/")
    ]
    if mine:
        path, number = mine[-1]
        code = code_at(Frame(path, int(number), ""))
        return f"{last.strip()}  ({Path(path).name}, line {number}: `{code}`)"
    return last.strip()


def without_tracebacks(text: str) -> str:
    """The output with each Python traceback condensed to its one line (the learner reads
    a sentence, never a library's stack)."""
    out, lines, number = [], text.splitlines(), 0
    while number < len(lines):
        if lines[number].startswith(TRACEBACK_START):
            end = number + 1
            while end < len(lines) and (
                lines[end].startswith((" ", "\t")) or not lines[end].strip()
            ):
                end += 1
            out.append(condensed_traceback(lines[number : end + 1]))
            number = end + 1
        else:
            out.append(lines[number])
            number += 1
    return "\n".join(out)


def explain_error(line: str) -> str | None:
    """What a logged error means and where the guide says so, when it is one we know."""
    for pattern, meaning, section in KNOWN_ERRORS:
        if re.search(pattern, line):
            return f"{meaning} (docs/{section})"
    return None
