"""How the DVC remote's and the GitOps repo's failures read: one line, the cause first."""

from __future__ import annotations

import pytest

from deploy import dvc_remote
from deploy.gitops import repo

DVC_PUSH = """\
ERROR: failed to transfer '/w/.dvc/cache/runs/cb/x' - Could not connect to the endpoint URL: "http://127.0.0.1:9/b/p/runs/cb/x"
ERROR: unexpected error - Could not connect to the endpoint URL: "http://127.0.0.1:9/b/p/files"

Having any troubles? Hit us up at https://dvc.org/support, we are always happy to help!
"""


def test_dvc_first_error_is_its_cause() -> None:
    assert dvc_remote.first_error(DVC_PUSH) == (
        'Could not connect to the endpoint URL: "http://127.0.0.1:9/b/p/runs/cb/x"'
    )
    assert dvc_remote.first_error("no error lines\nlast words\n") == "last words"


@pytest.mark.parametrize(
    ("stderr", "cause"),
    [
        (
            "fatal: could not read Username for 'https://h:1': terminal prompts disabled",
            "authentication failed: check GITOPS_TOKEN",
        ),
        (
            "remote: HTTP Basic: Access denied\nfatal: Authentication failed for 'https://h/x.git/'",
            "authentication failed: check GITOPS_TOKEN",
        ),
        (
            "fatal: unable to access 'https://h:1/x.git/': Failed to connect to h port 1: "
            "Couldn't connect to server",
            "Failed to connect to h port 1: Couldn't connect to server",
        ),
        (
            "fatal: unable to access 'https://h/x.git/': SSL certificate problem: "
            "unable to get local issuer certificate",
            "SSL certificate problem: unable to get local issuer certificate (a private CA? "
            "set GIT_SSL_CAINFO",
        ),
    ],
)
def test_git_causes_are_one_line(stderr: str, cause: str) -> None:
    assert repo.cause(stderr).startswith(cause)
    assert "\n" not in repo.cause(stderr)


def test_only_a_lost_race_is_retried() -> None:
    assert repo.rejected(" ! [rejected]        HEAD -> main (fetch first)\nerror: failed")
    assert repo.rejected(" ! [remote rejected] HEAD -> main (failed to update ref)")
    assert not repo.rejected(" ! [remote rejected] HEAD -> main (pre-receive hook declined)")
    assert not repo.rejected("fatal: unable to access 'https://h/x.git/': Could not resolve host")
