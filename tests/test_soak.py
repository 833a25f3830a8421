"""The real bot, unmodified (`citebot serve` in its own process), in a scripted conversation with
several users against the fake Bot API: nothing lost, nothing sent twice, a clean stop.
bench/bot_soak.py runs the same for 10 minutes."""
from __future__ import annotations

import pytest

from bench.bot_soak import soak


@pytest.mark.model
def test_a_scripted_conversation_with_the_real_bot_loses_nothing_and_sends_nothing_twice():
    result = soak(minutes=0.3, users=3, seed=11)
    assert result["questions"] >= 10 and result["button_presses"] >= 1
    assert result["problems"] == []
