"""Addresses: the ones the room can reach this machine at, and who counts as the room."""

import ipaddress
import re
import socket
import subprocess


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses that other devices can reach (not loopback, not link-local)."""
    found: list[str] = []
    for command in (
        ["ip", "-4", "-o", "addr", "show"],
        ["ifconfig"],
    ):  # Linux; macOS and the BSDs
        try:
            output = subprocess.run(
                command, capture_output=True, text=True, timeout=5
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        found = re.findall(r"\binet (?:addr:)?(\d+\.\d+\.\d+\.\d+)", output)
        if found:
            break
    if not found:
        try:
            found = socket.gethostbyname_ex(socket.gethostname())[2]
        except OSError:
            found = []
    reachable = [a for a in found if not a.startswith(("127.", "169.254."))]
    return list(dict.fromkeys(reachable))  # in order, without repeats


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.removeprefix("::ffff:")).is_loopback
    except ValueError:
        return False


def is_local_network(address: str) -> bool:
    """This machine, or a private network such as a room's Wi-Fi (LAN only: never the Internet)."""
    try:
        ip = ipaddress.ip_address(address.removeprefix("::ffff:"))
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local
