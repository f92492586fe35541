"""Anthropic Messages (``/v1/messages``): client codec, upstream adapter, vocabulary and the
simulated vendor side. Importing the package loads none of them."""
