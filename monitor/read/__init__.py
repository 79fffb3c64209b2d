"""The read side: every answer the CLI, the read API and the web UI give, and how it is rendered.

``model`` answers from the database (one definition of each answer, computed once); ``reports`` renders
changes (text, Markdown, JSON, JSON Patch); ``matrix`` renders the region-by-document matrix.

May import: ``fleet.rules`` (the rules it shares with the live state behind ``/metrics``), ``judge``,
``store``, ``config``, ``domain``. Never the live metric state (``signals``, ``fleet.live``) nor the write
path (``poll``): an answer depends on the database alone (import-linter holds it).
"""
