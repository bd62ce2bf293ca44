"""The workshop opens in a container for a learner with nothing installed
(.devcontainer/devcontainer.json): Python 3.12, the browser and redis-server that the
checks need, and `make setup` once it is created."""

import json
import re

from test_cli import COMMANDS, MAKE_TARGETS

from workshop.steps import ROOT

CONTAINER = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text())


def commands_run() -> list[str]:
    return [
        CONTAINER[key]
        for key in ("onCreateCommand", "postCreateCommand", "postAttachCommand")
        if key in CONTAINER
    ]


def test_it_runs_python_3_12_or_newer():
    version = re.search(r"python:(\d+)\.(\d+)", CONTAINER["image"])
    assert version and (int(version[1]), int(version[2])) >= (3, 12), CONTAINER["image"]


def test_it_installs_what_ci_installs_for_the_checks():
    ci = (ROOT / ".ci" / "run").read_text()
    needed = set(re.findall(r"missing\+=\(([\w-]+)\)", ci))
    assert needed >= {"chromium-headless-shell", "redis-server"}, ci
    installed = " ".join(commands_run())
    assert all(package in installed.split() for package in needed), installed


def test_it_sets_the_workshop_up_once_created():
    assert CONTAINER["postCreateCommand"] == "make setup"


def test_its_commands_exist():
    for command in commands_run():
        for target in re.findall(r"\bmake (\w[\w-]*)", command):
            assert target in MAKE_TARGETS, f"{command}: no make target {target}"
        for name in re.findall(r"-m workshop (\w+)", command):
            assert name in COMMANDS, f"{command}: no command {name}"


def test_it_forwards_the_chat_and_the_guide():
    guide = re.search(r"dev_addr: [\d.]+:(\d+)", (ROOT / "mkdocs.yml").read_text())
    assert guide and CONTAINER["forwardPorts"] == [8000, int(guide[1])]
