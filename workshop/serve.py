"""Run one step's chat app: `python -m workshop.serve steps/step4 --host 127.0.0.1 --port 8000`.

`make step N` and `make solution N` use this runner, as `flask run` does for Flask: until step 7 writes
its own `if __name__ == "__main__":` block, a step's app.py only defines `app`. From step 7 on, the runner
runs app.py exactly as `python app.py --host H --port P` would.
"""

import argparse
import ast
import runpy
import sys
from pathlib import Path

from workshop.ports import busy_port_message, port_is_free


def has_own_entry_point(app_file: Path) -> bool:
    """True once app.py has a top-level `if __name__ == "__main__":` block (step 7)."""
    for node in ast.parse(app_file.read_text(), str(app_file)).body:
        if (
            isinstance(node, ast.If)
            and "__main__" in ast.unparse(node.test)
            and "__name__" in ast.unparse(node.test)
        ):
            return True
    return False


def placeholder_app(app_file: Path):
    """A server for a step whose app.py defines no `app` yet, so that `make step 1` runs before any code is written."""
    from cello import App, Response

    app = App()

    @app.get("/")
    def not_built_yet(request):
        return Response.text(
            f"{app_file} defines no `app` yet. Follow its TODOs, then restart this server.\n",
            status=501,
        )

    return app


def allow_open_files(wanted: int = 65536) -> None:
    """Each participant is an open file, and macOS allows a process 256 unless it asks for
    more: raise this process's own limit, as far as the system allows (step7.md#a-whole-room)."""
    try:
        import resource
    except ImportError:  # Windows has no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    for limit in (target, 10240):  # macOS refuses more than kern.maxfilesperproc
        if soft != resource.RLIM_INFINITY and soft < limit:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
                return
            except (ValueError, OSError):
                continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder", help="a step folder, e.g. steps/step4 or solutions/step7"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args, passthrough = parser.parse_known_args(argv)

    folder = Path(args.folder)
    app_file = folder / "app.py"
    if not app_file.is_file():
        print(
            f"error: {app_file} does not exist (expected a folder such as steps/step4)",
            file=sys.stderr,
        )
        return 2
    if not port_is_free(args.port, args.host):
        print(f"error: {busy_port_message(args.port, args.host)}", file=sys.stderr)
        return 1

    allow_open_files()
    # The scale chapter's app talks to Redis: one for it, unless REDIS_URL names one.
    # Its helper is imported only for an app with a broker.py (redis_server.needs_redis).
    if (folder / "broker.py").is_file():
        from workshop import redis_server

        redis_server.for_the_app(folder)
    # The step's own modules (e.g. step 7's helpers) import as they would under `python app.py`.
    sys.path.insert(0, str(folder.resolve()))
    sys.argv = [
        str(app_file),
        "--host",
        args.host,
        "--port",
        str(args.port),
        *passthrough,
    ]
    if has_own_entry_point(app_file):
        runpy.run_path(str(app_file), run_name="__main__")
        return 0

    app = runpy.run_path(str(app_file), run_name="chat_app").get(
        "app"
    ) or placeholder_app(app_file)
    # One process, always: the chat room lives in this process's memory (CELLO_ENV=production would fork).
    app.run(host=args.host, port=args.port, workers=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
