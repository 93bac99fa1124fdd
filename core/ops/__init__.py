"""Running Quorum as a service: Prometheus metrics, readiness, structured logs, backups."""
