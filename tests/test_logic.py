"""Fast checks of pure logic, no model and no index: settings."""
from __future__ import annotations

import pytest

from index.config import ConfigurationError, Settings


@pytest.mark.parametrize("env, expected", [
    ({"CITEBOT_FUSION": "bogus"}, "CITEBOT_FUSION must be one of convex, rrf, not 'bogus'"),
    ({"CITEBOT_ALPHA": "7"}, "CITEBOT_ALPHA must be between 0 and 1"),
    ({"CITEBOT_MIN_RELEVANCE": "-3"}, "CITEBOT_MIN_RELEVANCE must be between 0 and 1.2"),
    ({"CITEBOT_CHUNK_WORDS": "5"}, "CITEBOT_CHUNK_WORDS must be 0 (one chunk per paragraph) or at least 10"),
    ({"CITEBOT_DENSE_INDEX": "ivf"}, "CITEBOT_DENSE_INDEX must be one of auto, flat, hnsw"),
])
def test_a_wrong_setting_is_refused_when_settings_are_made(monkeypatch, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as failure:
        Settings.from_env()
    assert str(failure.value).startswith(expected)
