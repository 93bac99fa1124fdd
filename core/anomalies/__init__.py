"""Anomaly alerts: detectors over the hourly roll-ups, alerts as work items, webhooks."""
