"""Helpers shared by the template's tests: baking projects, charts, CI, GitOps, images, MLflow."""
