"""The prompt catalog: prompts, their versions, reviews and labels, and their file formats.

The pure part works on frozen dataclasses (``spec.py``) without sessions or identities;
the stored part (``store``, ``workflow``, ``approvals``, ``labels``, ``sync``, ...) owns the
prompt tables and writes every change with its audit event. May import the ground floor,
the models, guardrails, audit and identity; nothing above.

- ``spec``     PromptSpec / VersionSpec and the content hash that identifies a version
- ``files``    ``prompts/<name>.yaml``: load, validate, dump
- ``render``   sandboxed rendering of a version's messages with typed variables
- ``checks``   static checks run when a version is submitted
- ``testsets`` ``prompts/testsets/<name>.yaml`` and its CSV form
"""
