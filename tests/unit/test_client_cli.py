"""``tornado-files`` as people type it: help that explains, and option values that start with
a dash (``--sort -size``). The real command, run as a subprocess; no server needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tornado_files.client.commands import build_parser, prepare_argv
from tornado_files.client.http import ClientError
from tornado_files.client.options import byte_count, count, positive_size

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


# Every numeric option, and values it must refuse: exit 2, one line naming the option, no
# request made (the URL is a closed port: a request would be exit 3). And an empty -o.
BAD_NUMBERS = [
    (["upload", "README.md", "--chunk-size", value], "--chunk-size")
    for value in ("0", "0B", "0.4", "-1", "-8MiB", "abc", "1XB", "")
] + [
    (["upload", "README.md", "--tus-threshold", value], "--tus-threshold")
    for value in ("0", "0KiB", "-1", "lots")
] + [
    (["ls", option, value], option)
    for option in ("--size-greater-than", "--size-less-than")
    for value in ("-1", "ten", "1.5.2", "²")
] + [
    (["ls", "--limit", value], "--limit") for value in ("0", "-5", "1.5", "ten", "", "٣")
] + [
    (["link", "0" * 32, "--expires", value], "--expires") for value in ("0", "0s", "-1h", "1.5h")
] + [
    (["download", "0" * 32, "-o", ""], "-o"),
]


@pytest.mark.parametrize(("argv", "option"), BAD_NUMBERS,
                         ids=[" ".join(argv[1:]) for argv, _ in BAD_NUMBERS])
def test_numeric_options_refuse_zero_negative_and_nonsense(argv, option):
    command = argv[0]
    result = tornado_files(*argv, "--url", "http://127.0.0.1:9")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line, line
    assert line.startswith(f"tornado-files {command}: error: {option}: "), line


@pytest.mark.parametrize(("text", "expected"), [
    ("1", 1), ("8MiB", 8 * 1024 * 1024), ("1.5KiB", 1536), ("16 MiB", 16 * 1024 * 1024),
])
def test_positive_sizes(text, expected):
    assert positive_size(text, "--chunk-size") == expected


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("1KiB", 1024), ("10", 10)])
def test_byte_counts_may_be_zero(text, expected):
    assert byte_count(text, "--size-greater-than") == expected


@pytest.mark.parametrize(("text", "expected"), [("1", 1), ("50", 50), ("0001000", 1000)])
def test_page_sizes(text, expected):
    assert count(text, "--limit") == expected


def test_a_size_past_any_file_is_refused_not_a_traceback():
    for text in ("9" * 400, "99999999999TiB"):
        with pytest.raises(ClientError) as caught:
            byte_count(text, "--size-less-than")
        assert caught.value.exit_code == 2
