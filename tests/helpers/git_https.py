"""A git server over HTTPS with a token, as a GitLab or GitHub remote is: Debian's lighttpd in
front of `git http-backend` (CGI), basic authentication (user `oauth2`, the token as password)
and TLS with a certificate from a throw-away CA (git trusts it through GIT_SSL_CAINFO).

The repositories are bare repos under `<workdir>/repos`, served at `https://127.0.0.1:<port>/`.
"""

from __future__ import annotations

import secrets
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from helpers.project import require_tool
from helpers.servers import Server, require_program

USER = "oauth2"
HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(directory: Path) -> tuple[Path, Path]:
    """A CA and a certificate for 127.0.0.1 signed by it: (ca.pem, server key + certificate)."""
    require_tool("openssl")
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Test CA",
        "-keyout", "ca.key", "-out", "ca.pem", cwd=directory,
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr", cwd=directory,
    )  # fmt: skip
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem",
        cwd=directory,
    )  # fmt: skip
    bundle = directory / "server-bundle.pem"
    bundle.write_text(
        (directory / "server.pem").read_text() + (directory / "server.key").read_text()
    )
    return directory / "ca.pem", bundle


class GitHttpsServer(Server):
    name = "git-https"

    def __init__(self, workdir: Path):
        super().__init__(workdir)
        self.lighttpd = require_tool("lighttpd")
        require_program("/usr/lib/lighttpd/mod_openssl.so")
        require_program(HTTP_BACKEND)
        self.token = "glpat-" + secrets.token_hex(16)
        self.repos = workdir / "repos"
        self.repos.mkdir(exist_ok=True)
        self.ca, bundle = make_certificates(workdir)
        (workdir / "users").write_text(f"{USER}:{self.token}\n")
        (workdir / "lighttpd.conf").write_text(
            f"""\
server.modules = ("mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi", "mod_openssl")
server.bind = "127.0.0.1"
server.port = {self.port}
server.document-root = "{self.repos}"
server.errorlog = "{workdir / "error.log"}"
ssl.engine = "enable"
ssl.pemfile = "{bundle}"
auth.backend = "plain"
auth.backend.plain.userfile = "{workdir / "users"}"
auth.require = ("" => ("method" => "basic", "realm" => "gitops", "require" => "valid-user"))
alias.url = ("" => "{HTTP_BACKEND}")
cgi.assign = ("" => "")
setenv.set-environment = ("GIT_PROJECT_ROOT" => "{self.repos}", "GIT_HTTP_EXPORT_ALL" => "1")
""",
            encoding="utf-8",
        )

    def command(self) -> list[str]:
        return [self.lighttpd, "-D", "-f", str(self.workdir / "lighttpd.conf")]

    def ready(self) -> bool:
        """Answers over TLS with our CA, and asks for credentials."""
        context = ssl.create_default_context(cafile=str(self.ca))
        try:
            urllib.request.urlopen(f"https://127.0.0.1:{self.port}/", timeout=2, context=context)
        except urllib.error.HTTPError as refused:
            return refused.code == 401
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return False

    def bare_repo(self, name: str = "gitops.git") -> str:
        """A new empty repository that accepts pushes; returns its HTTPS URL."""
        path = self.repos / name
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)], check=True
        )
        subprocess.run(["git", "-C", str(path), "config", "http.receivepack", "true"], check=True)
        return f"https://127.0.0.1:{self.port}/{name}"

    def path(self, name: str = "gitops.git") -> Path:
        return self.repos / name
