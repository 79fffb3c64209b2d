"""schema-drift-monitor: watch cloud API schema endpoints per region and report changes and drift."""

__version__ = "0.1.0"
