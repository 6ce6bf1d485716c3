"""Settings refuse what would make a deployment unsafe without anyone noticing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from discharge_bridge.config import Settings


@pytest.mark.parametrize("placeholder", ["change-me", "CHANGE-ME", " changethis ", "secret"])
def test_the_example_files_placeholder_token_is_refused_naming_the_setting(placeholder: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, api_token=placeholder)  # type: ignore[call-arg]
    assert caught.value.errors()[0]["loc"] == ("api_token",) and "placeholder" in str(caught.value)


def test_an_empty_token_means_no_static_token() -> None:
    assert Settings(_env_file=None, api_token="  ").api_token is None  # type: ignore[call-arg]
    token = Settings(_env_file=None, api_token="Xq3-long-random").api_token  # type: ignore[call-arg]
    assert token is not None and token.get_secret_value() == "Xq3-long-random"
