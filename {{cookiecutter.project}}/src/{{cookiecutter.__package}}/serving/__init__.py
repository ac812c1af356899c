"""The service's machinery, kept by the template: the API types derived from the model's schema,
the request guard, the NumPy fast path and the process tuning. service.py is the part to read
and change; `cruft update` refreshes this package."""
