"""`make bench`: the service against the usual alternatives (see __main__.py)."""
