"""HTTP routes served beside the dashboard (the gateway's endpoints live here)."""
