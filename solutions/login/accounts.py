"""Accounts for the chat, handed out ready-made (docs/login.md): who may log in, and the
cookie that carries their signed token.

app.py uses:

    SECRET = accounts.load_secret()    # the key that signs tokens (kept in a file)
    users = accounts.Accounts()        # users.json: names and Argon2id hashes
    users.log_in(request)              # the name, if POST /login's password is right;
                                       # accounts.Refused (400 or 401) if not
    accounts.token_cookie(token, request)  # Set-Cookie value: hands the token over
    accounts.LOGGED_OUT                # Set-Cookie value: takes it back
    accounts.EXPIRED                   # the message when a token runs out
    accounts.login_page                # a route: GET /login's page, login.html

A name nobody has yet is claimed at its first login, with that password: no sign-up
page and no admin step in class. `python accounts.py add NAME` creates an account ahead
of time (it asks for the password without showing it); `python accounts.py list` lists
them.

Why these libraries: Cello 1.4.1 checks tokens (app.enable_jwt) but cannot make one, so
app.py signs them with PyJWT. argon2-cffi hashes passwords with Argon2id, the first
choice of OWASP's password storage cheat sheet. A password is never stored, printed or
logged.
"""

import getpass
import json
import os
import secrets
import sys
import threading
from pathlib import Path

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from cello import Response
from messages import BadMessage, clean_name
from platformdirs import user_data_path

COOKIE = "chat_token"  # the cookie that carries the token, read by app.enable_jwt
TOKEN_SECONDS = 43_200  # 12 hours, a workshop day: log in once in the morning
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte-long "password" is work for nothing
# Data, not code: kept in this user's data folder (~/.local/share/cello-chat on Linux),
# out of the step folders, so your app and the solution share accounts. $CHAT_DATA
# names another folder (the checks use a temporary one).
DATA = Path(os.environ.get("CHAT_DATA") or user_data_path("cello-chat", False))
SECRET_FILE = DATA / "secret"
ACCOUNTS_FILE = DATA / "users.json"
LOGIN_PAGE = Path(__file__).with_name("login.html")

# RFC 9106's second recommendation: 64 MiB and ~0.1-0.2 s per hash. The checks ask for
# the cheapest parameters through the environment, as they shorten the heartbeat.
HASHING = os.environ.get("CHAT_PASSWORD_HASHING", "rfc-9106-low-memory")
PROFILES = {
    "rfc-9106-low-memory": profiles.RFC_9106_LOW_MEMORY,
    "cheapest": profiles.CHEAPEST,  # for tests only: a few bytes, no real protection
}
if HASHING not in PROFILES:
    sys.exit(
        f"CHAT_PASSWORD_HASHING must be one of {', '.join(PROFILES)}, not {HASHING!r}"
    )
_hasher = PasswordHasher.from_parameters(PROFILES[HASHING])
# At most this many hashes at once: each takes 64 MiB. 30 people logging in at the same
# moment took 2 GB without this limit, 300 MB with it, and were served as fast.
HASHES_AT_ONCE = 4
_hashing = threading.BoundedSemaphore(HASHES_AT_ONCE)

LOGGED_OUT = f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
# What an open connection hears when its token runs out (docs/login.md#expiry).
EXPIRED = json.dumps(
    {"type": "error", "message": "Your login has expired: log in again."}
)


def load_secret() -> str:
    """$CHAT_SECRET if set, else a random key kept in DATA/secret (made at first use,
    readable by its owner only), so that a restart logs nobody out."""
    key = os.environ.get("CHAT_SECRET")
    if key is None:
        try:
            key = SECRET_FILE.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            key = _new_secret()
    if len(key) < 32:  # HS256 signs with a 256-bit key: shorter ones can be guessed
        where = "CHAT_SECRET" if "CHAT_SECRET" in os.environ else str(SECRET_FILE)
        sys.exit(
            f"{where} holds a key of {len(key)} characters; tokens need at least 32. "
            "Make one with: python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return key


def _new_secret() -> str:
    key = secrets.token_hex(32)
    DATA.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile
        return SECRET_FILE.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(key + "\n")
    return key


class Refused(BadMessage):
    """A login refused: `status` is 400 (not a name and a password) or 401 (wrong)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def read_login(request) -> tuple[str, str]:
    """(name, password) from a JSON body {"name": ..., "password": ...}; Refused(400)
    saying what is wrong otherwise."""
    try:
        data = request.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise Refused(400, 'Send JSON: {"name": "Ada", "password": "..."}.')
    try:
        name = clean_name(data.get("name"))
    except BadMessage as problem:
        raise Refused(400, str(problem).replace("set_name", "A login")) from None
    password = data.get("password")
    if not isinstance(password, str):
        raise Refused(400, 'A login needs "password": a string.')
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        lengths = f"{MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH}"
        raise Refused(400, f"A password has {lengths} characters.")
    return name, password


def token_cookie(token: str, request) -> str:
    """The Set-Cookie value that hands the token to the browser (docs/login.md#cookie).
    HttpOnly: the page's scripts cannot read it. SameSite=Strict: other sites' pages
    cannot make the browser send it. Secure over HTTPS only: a browser drops a Secure
    cookie set over plain http://, as on a classroom's LAN address."""
    secure = "; Secure" if request.is_secure() else ""
    return (
        f"{COOKIE}={token}; Path=/; Max-Age={TOKEN_SECONDS}; HttpOnly; "
        f"SameSite=Strict{secure}"
    )


def login_page(request) -> Response:
    """GET /login: the form (app.py registers it: app.get("/login")(login_page))."""
    return Response.html(LOGIN_PAGE.read_text(encoding="utf-8"))


def _hash(password: str) -> str:
    with _hashing:
        return _hasher.hash(password)


def _verify(stored: str, password: str) -> bool:
    with _hashing:
        try:
            return _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False


class Accounts:
    """Names and password hashes in a JSON file:
    {"ada": {"name": "Ada", "hash": "$argon2id$..."}}. Names ignore case."""

    def __init__(self, path: Path = ACCOUNTS_FILE):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._users = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self._users = {}
        except (ValueError, UnicodeDecodeError) as error:
            sys.exit(
                f"{self.path} is not an accounts file ({error}). Move it away and "
                "start again, or fix it: nobody can log in meanwhile."
            )

    def names(self) -> list[str]:
        with self._lock:
            return sorted(user["name"] for user in self._users.values())

    def log_in(self, request) -> str:
        """The account's name if POST /login's body has the right password for it;
        Refused otherwise. Slow on purpose (a hash takes 0.1 s or more): call it from a
        `blocking=True` route."""
        name = self.check(*read_login(request))
        if name is None:
            raise Refused(401, "Wrong name or password.")
        return name

    def check(self, name: str, password: str) -> str | None:
        """The account's name if `password` is right for `name`, else None. A name with
        no account yet is claimed with this password."""
        key = name.casefold()  # "ada" and "Ada" are one account
        with self._lock:
            user = self._users.get(key)
        if user is None:
            new_hash = _hash(password)  # outside the lock: others log in meanwhile
            with self._lock:
                if key not in self._users:  # nobody claimed it while we hashed
                    self._users[key] = {"name": name, "hash": new_hash}
                    self._save()
                    return name
                user = self._users[key]
        if not _verify(user["hash"], password):
            return None
        if _hasher.check_needs_rehash(user["hash"]):  # stronger parameters now: upgrade
            new_hash = _hash(password)
            with self._lock:
                user["hash"] = new_hash
                self._save()
        return user["name"]

    def add(self, name: str, password: str) -> None:
        """Create an account, or set a new password (the command line's `add`)."""
        new_hash = _hash(password)
        with self._lock:
            self._users[name.casefold()] = {"name": name, "hash": new_hash}
            self._save()

    def _save(self) -> None:
        """Write the whole file anew, then swap it in: a crash never leaves half a file.
        Hold self._lock."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(self._users, file, indent=1)
        os.replace(temporary, self.path)


def main(argv: list[str]) -> int:
    accounts = Accounts()
    if argv == ["list"]:
        print("\n".join(accounts.names()) or f"No accounts yet in {accounts.path}.")
        return 0
    if len(argv) == 2 and argv[0] == "add":
        try:
            name = clean_name(argv[1])
        except BadMessage as problem:
            print(problem, file=sys.stderr)
            return 2
        password = getpass.getpass(f"Password for {name}: ")
        if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            print(f"A password has at least {MIN_PASSWORD_LENGTH} characters.")
            return 2
        accounts.add(name, password)
        print(f"{name} can log in now.")
        return 0
    print("usage: python accounts.py add NAME | list", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
