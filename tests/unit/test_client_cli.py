"""``tornado-files`` as people type it: help that explains, and option values that start with
a dash (``--sort -size``). The real command, run as a subprocess; no server needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tornado_files.client.commands import build_parser, prepare_argv

COMMANDS = ("serve", "fsck", "upload", "download", "ls", "rm", "link")


def tornado_files(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tornado_files", *args], capture_output=True,
                          text=True, timeout=30, check=False)


def test_top_level_help_describes_every_command():
    result = tornado_files("--help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "usage: tornado-files" in lines[0]
    for command in COMMANDS:
        described = [line for line in lines if line.strip().startswith(command + " ")]
        assert described, f"{command} is not described:\n{result.stdout}"
        assert len(described[0].split()) > 3, described[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_a_description(command):
    result = tornado_files(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: tornado-files {command} ")
    paragraphs = result.stdout.split("\n\n")
    assert len(paragraphs) > 2, result.stdout
    description = paragraphs[1]
    assert not description.startswith(("positional", "options")), result.stdout
    assert len(description.split()) >= 5, description


@pytest.mark.parametrize("command", ["upload", "download", "ls", "rm", "link"])
def test_every_client_argument_has_help(command):
    text = tornado_files(command, "--help").stdout
    lines = text.split("\n\n", 2)[2].split("exit status:")[0].splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("  ") or line.startswith("   "):
            continue  # a section title, or help text
        following = lines[index + 1] if index + 1 < len(lines) else ""
        has_help = "  " in line.strip() or following.startswith("   ")
        assert has_help, f"{line.strip()} has no help in:\n{text}"


@pytest.mark.parametrize(("argv", "sort"), [
    (["ls", "--sort", "-size"], "-size"),
    (["ls", "--sort=-size"], "-size"),
    (["ls", "--sort", "size", "--json"], "size"),
    (["ls", "--json", "--sort", "-filename"], "-filename"),
])
def test_sort_accepts_a_descending_key(argv, sort):
    args = build_parser().parse_args(prepare_argv(argv))
    assert args.sort == sort


def test_only_option_values_are_rewritten():
    # "-size" after --sort is its value; a file named "-x" after -- stays a file.
    assert prepare_argv(["ls", "--sort", "-size"]) == ["ls", "--sort=-size"]
    assert prepare_argv(["upload", "--", "--sort", "-x"]) == ["upload", "--", "--sort", "-x"]
    assert prepare_argv(["ls", "--filename", "-draft"]) == ["ls", "--filename=-draft"]
