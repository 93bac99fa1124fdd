"""The prompt catalog without a database: the file formats, rendering and static checks.

Pure functions over frozen dataclasses (``spec.py``), so that the stored-version workflow
can be built on top without these modules knowing about sessions or identities.

- ``spec``     PromptSpec / VersionSpec and the content hash that identifies a version
- ``files``    ``prompts/<name>.yaml``: load, validate, dump
- ``render``   sandboxed rendering of a version's messages with typed variables
- ``checks``   static checks run when a version is submitted
- ``testsets`` ``prompts/testsets/<name>.yaml`` and its CSV form
"""
