"""The governed gateway: every model call takes the one path in `pipeline`."""
