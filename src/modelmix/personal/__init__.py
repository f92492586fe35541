"""Personalised routing (issue 15, item 3): per-subject calibration of the learned router."""
