"""What a step hands on: dotenv lines and a JSON file."""

import json

import pytest

from steps.runtime.outputs import Result, dotenv_text, write_outputs


def test_outputs_are_written_as_dotenv_and_json(tmp_path):
    result = Result({"CD_IMAGE": "r/app@sha256:" + "a" * 64}, {"tags": ["a", "b"]})
    write_outputs(result, str(tmp_path / "out.env"), str(tmp_path / "out.json"))
    assert (tmp_path / "out.env").read_text() == "CD_IMAGE=r/app@sha256:" + "a" * 64 + "\n"
    assert json.loads((tmp_path / "out.json").read_text())["tags"] == ["a", "b"]


def test_dotenv_refuses_multiline_values():
    with pytest.raises(ValueError, match="single line"):
        dotenv_text({"CD_X": "a\nb"})
