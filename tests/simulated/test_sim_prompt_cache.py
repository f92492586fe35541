"""Simulated prompt caching: the same bytes up to a cache_control breakpoint are read back."""

from __future__ import annotations

import copy
from typing import Any

from modelmix.simulated.prompt_cache import PromptCache, breakpoints

BODY: dict[str, Any] = {
    "system": [{"type": "text", "text": "S" * 400, "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "U" * 200, "cache_control": {"type": "ephemeral"}}
            ],
        }
    ],
}


def test_a_repeated_prefix_is_read_and_a_new_one_written() -> None:
    cache = PromptCache()
    assert cache.use(breakpoints(BODY)) == (0, 600)  # first time: all written
    assert cache.use(breakpoints(BODY)) == (600, 0)  # same bytes: all read
    longer = copy.deepcopy(BODY)
    longer["messages"].append({"role": "assistant", "content": "A" * 100})
    longer["messages"].append(
        {"role": "user", "content": [{"type": "text", "text": "V", "cache_control": {}}]}
    )
    longer["messages"][-1]["content"][0]["cache_control"] = {"type": "ephemeral"}
    read, written = cache.use(breakpoints(longer))
    assert read == 600 and written == 101  # the old prefix read, the new tail written


def test_a_changed_byte_before_the_breakpoint_misses() -> None:
    cache = PromptCache()
    cache.use(breakpoints(BODY))
    changed = copy.deepcopy(BODY)
    changed["system"][0] = {
        "cache_control": {"type": "ephemeral"},
        "type": "text",
        "text": "S" * 400,
    }
    assert cache.use(breakpoints(changed))[0] == 0  # same content, keys reordered: a miss
