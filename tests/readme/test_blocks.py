"""How the README's blocks are read and their shown outputs compared (no server)."""

from __future__ import annotations

from pathlib import Path

from tests.readme.blocks import match_output, shell_blocks, split_commands

KEY = "exs_0d69db07_4L1fTY6XsquzwCWT8iAeVlVjRvHfpsDE"
RUN_KEY = "exs_8755bd88_M-zNXcryZ15saXfvLERU02wv2QNsjPyg"


def test_blocks_markers_and_sections(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n\n## One\n\n<!-- readme-test: skip (needs Docker) -->\n```sh\ndocker ps\n```\n"
        "```json\n{}\n```\n- a list item:\n\n  ```sh\n  echo hi\n  # hi\n  ```\n"
    )
    skip, indented = shell_blocks(readme)
    assert (skip.section, skip.marker, skip.reason, skip.line) == ("One", "skip", "needs Docker", 6)
    assert indented.marker is None
    assert [(c.text, c.shown, c.line) for c in indented.commands] == [("echo hi", "hi", 15)]


def test_commands_span_quotes_continuations_and_here_documents() -> None:
    body = [
        "export A=1   # a comment, 'with a quote'",
        "curl -s -X POST $BASE/x \\",
        '  -d \'{"a": 1,',
        '       "b": 2}\'',
        '# {"ok":true,',
        '#  "b":2}',
        "curl -d @- <<EOF",
        '{"a": "$A"}',
        "# not an output: inside the here-document",
        "EOF",
        "# HTTP/1.1 200 OK",
        "#",
        "# {}",
        "",
        "# a note after a blank line is nobody's output",
        "sleep 1",
    ]
    commands = split_commands(body, first_line=10)
    assert [c.line for c in commands] == [10, 11, 16, 25]
    assert commands[1].text.endswith('"b": 2}\'') and commands[1].shown == '{"ok":true,"b":2}'
    assert commands[2].text.endswith("EOF") and commands[2].shown == "HTTP/1.1 200 OK\n\n{}"
    assert commands[0].expected == commands[3].expected == []


def test_the_output_must_be_what_is_shown_but_for_elisions_and_times() -> None:
    shown = '{"id":1,…,"status":"active","last_tested_at":"2026-11-24T01:14:37.011745Z",…}'
    real = (
        '{"id":1,"name":"x","status":"active","last_tested_at":"2026-12-04T08:35:08.0681Z","n":0}'
    )
    assert match_output(shown, real, {}).ok
    assert not match_output(shown, real.replace("active", "inactive"), {}).ok
    assert not match_output(shown, real.replace('"id":1', '"id":2'), {}).ok
    assert not match_output('{"pnl":"61.76"}', '{"pnl":"61.77"}', {}).ok
    # "…" stands for what is left out, not for a missing end: the whole answer must match.
    assert not match_output('{"id":1', '{"id":1,"more":2}', {}).ok
    headers = "HTTP/1.1 404 Not Found\n…\ncontent-type: application/problem+json\n…\n\n{}"
    real_headers = "HTTP/1.1 404 Not Found\r\ndate: x\r\ncontent-type: application/problem+json\r\n"
    assert match_output(headers, real_headers + "x-request-id: 1\r\n\r\n{}", {}).ok
    assert not match_output(headers, real_headers + "\r\n{}", {}).ok


def test_keys_are_captured_with_their_prefix_then_expected_in_their_place() -> None:
    shown = f'{{"prefix":"0d69db07","key":"{KEY}"}}'
    found = match_output(shown, f'{{"prefix":"8755bd88","key":"{RUN_KEY}"}}', {})
    assert found.ok and found.captured == {KEY: RUN_KEY, "0d69db07": "8755bd88"}
    assert not match_output(shown, f'{{"prefix":"11111111","key":"{RUN_KEY}"}}', {}).ok
    listed = "1  admin  -   0d69db07  active  bootstrap admin"
    assert match_output(listed, "1\tadmin\t-\t8755bd88\tactive\tbootstrap admin", found.captured).ok
    assert not match_output(
        listed, "1\tadmin\t-\t99999999\tactive\tbootstrap admin", found.captured
    ).ok
    # A value the reader set stands in for the README's wherever an answer echoes it.
    known = {"https://testnet.binance.vision": "http://127.0.0.1:4321"}
    url = '{"api_base_url":"https://testnet.binance.vision/"}'
    assert match_output(url, '{"api_base_url":"http://127.0.0.1:4321/"}', known).ok
    assert not match_output(url, url, known).ok
