"""Judging documents, purely: canonical form, document kinds and their change rules, cross-region grouping.

``canonical`` parses and canonicalises JSON; ``kinds`` turns a body into a canonical document and classifies
the changes between two (``kinds.schema.rules`` are the JSON-schema rules of docs/change-rules.md);
``regions`` groups a (cloud, schema)'s regions by the document they serve and picks the reference.

Pure functions over plain data. May import: ``domain``, deepdiff and jsonpatch; never the store, the network,
the metrics, the scheduler or the configuration (import-linter holds it).
"""
