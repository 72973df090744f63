"""`python -m workbench` runs the same entry point as the `workbench` command."""

try:
    from workbench.entry import main
except KeyboardInterrupt:  # Ctrl+C while Python is still starting: end as quietly as later on
    raise SystemExit(130) from None

raise SystemExit(main())
