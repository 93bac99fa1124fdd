"""Shared helpers of the page scripts: sign-in, navigation and common widgets."""
