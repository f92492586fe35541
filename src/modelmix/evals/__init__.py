"""Evals: datasets, scorers, an LLM judge, a resumable runner through the gateway's own engine,
and the model x task matrix (quality with intervals, cost, latency) stored in the ledger."""
