"""The quality loop on live traffic: capture, online judge, shadow traffic, feedback, policy
versions with canaries, offline replay, retraining from the ledger, regression alarms.

Everything here is off the request path: the engine hands a finished answer to
``QualityLoop.observe`` (only when a feature needs it), which samples and schedules background
work with bounded concurrency, dropping it under load.
"""
