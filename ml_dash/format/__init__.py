"""The on-disk and on-the-wire format, shared by the client, the uploader and the server.

A leaf: imports nothing else of ml_dash (an import-linter contract in pyproject.toml keeps it so).
``layout`` names files and directories, ``values`` spells what JSON cannot, ``limits`` bounds what both sides
accept, ``params`` replays parameter operations, ``jsonl`` reads the append-only files, ``names`` checks user names.
"""
