"""GitOps write-back (`python -m deploy.gitops`): deploy, teardown and gc of environments."""
