"""Adaptive routing (issue 15): live per-deployment latency and load estimates
(``live.py``), the route knobs that use them (``config.py``), the plan wrapper that applies
them to any strategy (``plan.py``) and the ledger seed at start-up (``seed.py``)."""
