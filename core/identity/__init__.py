"""Identity: people, teams, roles and the team API keys applications call the gateway with.

`people` manages teams, people and their roles; `keys` issues, rotates, revokes and
authenticates team keys (stored only as hashes). Owns the identity and key tables.
Imports the ground floor, the models and the audit trail; nothing above.
"""
