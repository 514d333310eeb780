"""The README's shell blocks as a reader sees them: each command with the output shown under it.

A block is a fenced `sh` (or bash/shell/console) block. An HTML comment right before the fence
says what the test does with it, and nothing else does:

    <!-- readme-test: skip (why) -->   not run; the reason is required and reported
    <!-- readme-test: serve -->        the server: started in the background, its output checked

Inside a block, `# ` lines right under a command are its output, as the terminal shows it:
`#  ` (two spaces or more) continues the previous line (a long JSON answer wrapped), `#` alone
is an empty line, and `…` elides anything (several lines too). A blank line ends the output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SHELLS = {"sh", "bash", "shell", "console"}
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<what>[\w-]+)\s*(?:\((?P<why>[^)]*)\))?\s*-->")
_HEADING = re.compile(r"^#{1,6} +(?P<title>.+?)\s*$")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(?P<word>\w+)\1")

# What differs from one run to the next, and matches anything of its shape: times and dates,
# API keys and their prefixes (captured: the reader copies them into an export), latencies.
API_KEY = re.compile(r"exs_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")
_TIME = r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?)?"
_VARYING = re.compile(rf"(?P<time>{_TIME})|(?P<latency>\"latency_ms\":\d+)|(?P<space>[ \t]+)")


@dataclass
class Command:
    text: str
    line: int  # in the README, 1-based
    expected: list[str] = field(default_factory=list)  # the `#` lines under it, as written

    @property
    def shown(self) -> str:
        """The output the README shows, wrapped lines joined."""
        lines: list[str] = []
        for raw in self.expected:
            rest = raw[1:]
            if rest.startswith("  ") and lines:
                lines[-1] += rest.lstrip()
            else:
                lines.append(rest[1:] if rest.startswith(" ") else rest)
        return "\n".join(lines)


@dataclass
class Block:
    line: int  # the fence's
    section: str
    lang: str
    marker: str | None
    reason: str | None
    commands: list[Command]

    @property
    def where(self) -> str:
        return f"README.md:{self.line} ({self.section})"


def shell_blocks(readme: Path) -> list[Block]:
    lines = readme.read_text().splitlines()
    blocks: list[Block] = []
    section, i = "", 0
    while i < len(lines):
        if heading := _HEADING.match(lines[i]):
            section = heading["title"]
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, start = fence["indent"], i
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        if fence["lang"] not in SHELLS:
            continue
        marker = _MARKER.match(lines[start - 1]) if start else None
        blocks.append(
            Block(
                line=start + 1,
                section=section,
                lang=fence["lang"],
                marker=marker["what"] if marker else None,
                reason=marker["why"].strip() if marker and marker["why"] else None,
                commands=split_commands(body, first_line=start + 2),
            )
        )
    return blocks


def split_commands(body: list[str], first_line: int) -> list[Command]:
    """Commands as the shell reads them (quotes, `\\` continuations and here-documents span
    lines), each with the `#` lines right under it."""
    commands: list[Command] = []
    current: list[str] = []
    quote: str | None = None
    heredoc: str | None = None
    last: Command | None = None  # the command whose output the next `#` line belongs to
    for n, line in enumerate(body):
        if heredoc is not None:
            current.append(line)
            if line.strip() == heredoc:
                heredoc = None
        elif not current and line.startswith("#"):
            if last is not None:
                last.expected.append(line)
            continue
        elif not current and not line.strip():
            last = None
            continue
        else:
            current.append(line)
            quote, continued, heredoc = _scan(line, quote)
            if quote is not None or continued or heredoc is not None:
                continue
        if heredoc is None and quote is None:
            last = Command("\n".join(current), first_line + n - len(current) + 1)
            commands.append(last)
            current = []
    if current:
        raise ValueError(f"README.md:{first_line}: a command does not end: {current}")
    return commands


def _scan(line: str, quote: str | None) -> tuple[str | None, bool, str | None]:
    """After `line`: the open quote, whether a `\\` continues it, and a here-document's end word."""
    i = 0
    heredoc: str | None = None
    while i < len(line):
        c = line[i]
        if quote == "'":
            quote = None if c == "'" else quote
        elif c == "\\" and quote != "'":
            if i == len(line) - 1:
                return quote, True, heredoc
            i += 1
        elif quote == '"':
            quote = None if c == '"' else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            break  # a comment, to the end of the line
        elif c == "<" and (m := _HEREDOC.match(line, i)):
            heredoc = m["word"]
            i = m.end()
            continue
        i += 1
    return quote, False, heredoc


@dataclass
class Match:
    ok: bool
    captured: dict[str, str]  # README value -> this run's


def match_output(shown: str, actual: str, known: dict[str, str]) -> Match:
    """Whether `actual` is what the README shows: literally, except for `…` and what varies
    between runs. A README value the reader replaced with their own (`known`: an export, or a
    key and its prefix copied from an earlier answer) must be theirs; a README key or prefix
    seen first here is captured, with its prefix."""
    keys = set(API_KEY.findall(shown))
    prefixes = {_prefix(k): k for k in keys | {k for k in known if API_KEY.fullmatch(k)}}
    values = sorted({*known, *keys, *prefixes}, key=len, reverse=True)
    literal = re.compile("|".join(re.escape(v) for v in values) or "(?!)")
    groups: dict[str, str] = {}
    parts = re.split(r"[ \t]*…[ \t]*", shown)  # `# … Bootstrap`: the space is the elision's
    pattern = ".*?".join(_pattern(part, literal, known, groups) for part in parts)
    found = re.fullmatch(pattern, actual.replace("\r\n", "\n").rstrip("\n"), re.DOTALL)
    if not found:
        return Match(False, {})
    captured = {value: found[name] for value, name in groups.items()}
    for key in keys & set(captured):
        prefix = _prefix(key)
        if captured.setdefault(prefix, _prefix(captured[key])) != _prefix(captured[key]):
            return Match(False, {})  # a prefix that is not its key's
    return Match(True, captured)


def _prefix(key: str) -> str:
    return key.split("_")[1]


def _pattern(
    part: str, literal: re.Pattern[str], known: dict[str, str], groups: dict[str, str]
) -> str:
    out: list[str] = []
    pos = 0
    for m in literal.finditer(part):
        out.append(_varying(part[pos : m.start()]))
        value = m.group()
        if value in known:
            out.append(re.escape(known[value]))
        elif value in groups:
            out.append(f"(?P={groups[value]})")
        else:
            groups[value] = f"g{len(groups)}"
            shape = API_KEY.pattern if value.startswith("exs_") else "[0-9a-f]{8}"
            out.append(f"(?P<{groups[value]}>{shape})")
        pos = m.end()
    out.append(_varying(part[pos:]))
    return "".join(out)


def _varying(text: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _VARYING.finditer(text):
        out.append(re.escape(text[pos : m.start()]))
        if m["time"]:
            out.append(_TIME)
        elif m["latency"]:
            out.append(r"\"latency_ms\":\d+")
        else:
            out.append(r"[ \t]+")
        pos = m.end()
    out.append(re.escape(text[pos:]))
    return "".join(out)
