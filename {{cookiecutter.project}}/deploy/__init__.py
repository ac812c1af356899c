"""Deploy glue: branch -> environment naming and the GitOps write-back CLI (`python -m deploy.gitops`).

Runs with Python 3.11+ and PyYAML alone (jsonschema for `deploy`, mlflow only for model aliases
against a tracking server), so a teardown job needs neither the branch nor the project's venv.
"""
