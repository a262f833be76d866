import json

from hypothesis import given
from hypothesis import strategies as st

from agentgym.protocols import (
    MAX_ACTION_CHARS,
    CommandToolProtocol,
    TagProtocol,
    ToolCall,
    ToolCallProtocol,
    clean_text,
)

TAGS = TagProtocol()


def test_tag_action_with_thought():
    parsed = TAGS.parse("<think>the key opens it</think>\n<action> take   key </action>")
    assert parsed.ok and parsed.value == "take key"
    assert parsed.thought == "the key opens it"


def test_tag_problems_are_named():
    cases = {
        "take key": "no <action>",
        "<action>a</action><action>b</action>": "2 <action> blocks",
        "<action>take key": "not closed",
        "<action>   </action>": "empty",
        "": "empty",
    }
    for raw, problem in cases.items():
        parsed = TAGS.parse(raw)
        assert not parsed.ok and parsed.value is None
        assert problem in parsed.error
        assert "<action>look</action>" in parsed.error  # always shows a valid form


def test_lenient_accepts_a_bare_command_only():
    lenient = TagProtocol(lenient=True)
    assert lenient.parse("go north").value == "go north"
    assert not lenient.parse("go north\nthen take key").ok


def test_huge_action_is_an_invalid_action_not_a_crash():
    parsed = TAGS.parse("<action>" + "x" * 1_048_576 + "</action>")
    assert not parsed.ok
    assert f"{MAX_ACTION_CHARS:,}" in parsed.error


def test_non_utf8_and_control_characters():
    parsed = TAGS.parse(b"<action>take \xff\xfekey\x00\x07</action>")
    assert parsed.ok and parsed.value == "take \ufffd\ufffdkey"
    assert clean_text("a\udc80b\x1bc\n") == "a\ufffdbc\n"


def test_non_text_action_is_named():
    parsed = TAGS.parse(42)
    assert not parsed.ok and "got a int" in parsed.error


TOOLS = ToolCallProtocol([{
    "type": "function",
    "function": {"name": "bash", "parameters": {
        "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}},
}])


def test_tool_call_text_object_and_dict_agree():
    call = ToolCall("bash", {"command": "ls"})
    for raw in (call, call.to_dict(), call.to_text(), f"<think>hm</think>{call.to_text()}",
                {"name": "bash", "arguments": json.dumps({"command": "ls"})}):
        parsed = TOOLS.parse(raw)
        assert parsed.ok, parsed.error
        assert parsed.value == call


def test_tool_call_problems_are_named():
    cases = {
        "<tool_call>{not json}</tool_call>": "not valid JSON",
        '<tool_call>{"name": "rm", "arguments": {}}</tool_call>': "unknown tool 'rm'",
        '<tool_call>{"name": "bash", "arguments": {}}</tool_call>': "needs the argument(s) command",
        '<tool_call>{"name": "bash", "arguments": {"command": "ls", "x": 1}}</tool_call>':
            "has no argument(s) x",
        '<tool_call>{"name": "bash", "arguments": [1]}</tool_call>': "must be a JSON object",
        "just text": "no <tool_call> block",
    }
    for raw, problem in cases.items():
        parsed = TOOLS.parse(raw)
        assert not parsed.ok
        assert problem in parsed.error, parsed.error
        assert "Tools: bash" in parsed.error


def test_command_tool_protocol_round_trip():
    protocol = CommandToolProtocol()
    assert protocol.parse(protocol.encode("open  door")).value == "open door"
    assert not protocol.parse(ToolCall("act", {"command": ""})).ok
    assert protocol.schemas()[0]["function"]["name"] == "act"


commands = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=60)


@given(commands)
def test_encode_then_parse_gives_the_command_back(command):
    normal = " ".join(command.split())
    for protocol in (TagProtocol(), CommandToolProtocol()):
        if not normal or "<" in command or ">" in command:
            continue
        parsed = protocol.parse(protocol.encode(command))
        assert parsed.ok and parsed.value == normal


@given(st.one_of(st.text(), st.binary()))
def test_parse_never_raises(raw):
    for protocol in (TagProtocol(), TagProtocol(lenient=True), TOOLS, CommandToolProtocol()):
        parsed = protocol.parse(raw)
        assert parsed.ok or parsed.error
