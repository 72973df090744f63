"""Command-line verbs: one module per verb, each with `register(subparsers)`, found automatically."""
