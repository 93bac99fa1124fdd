"""The `quorum` command line: parses, validates, then calls core in a line or two."""
