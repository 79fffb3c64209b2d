"""The read side: every answer the CLI, the read API and the web UI give, how it is rendered, and the few
changes an operator makes to what the answers mean (acknowledge, approve, expect).

``model`` answers from the database (one definition of each answer, computed once); ``commands`` holds the
operator's changes with their rules (one layer for the CLI's ``ack``/``expect`` and the API's write routes);
``checks`` the rules for what a reader may ask (labels, numbers, times), with their sentences; ``records``
the store's records as readers receive them; ``reports`` renders changes (text, Markdown, JSON, JSON Patch);
``matrix`` renders the region-by-document matrix.

May import: ``fleet.rules`` (the rules it shares with the live state behind ``/metrics``), ``judge``,
``store``, ``config``, ``domain``. Never the live metric state (``signals``, ``fleet.live``) nor the write
path (``poll``): an answer depends on the database alone (import-linter holds it). The CLI and ``web/`` reach
the store through this package (and ``store.admin``), never directly.
"""
