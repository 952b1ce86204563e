"""scripts/deploy-web against a stand-in for the AWS CLI (a script on PATH that answers describe-stacks with a
stack's outputs and records every other call) and an issuer's discovery document on loopback: the pages'
config.json it writes, what it uploads and invalidates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ROOT

FAKE_AWS = r"""#!PYTHON
import json, os, shutil, sys
args = sys.argv[1:]
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
if args[:2] == ["--region", "us-east-1"]:
    args = args[2:]
if args[:2] == ["cloudformation", "describe-stacks"]:
    print(open(os.environ["FAKE_AWS_OUTPUTS"]).read())
elif args[:2] == ["s3", "cp"]:
    shutil.copy(args[2], os.path.join(os.environ["FAKE_AWS_UPLOADS"], os.path.basename(args[2])))
"""


@pytest.fixture
def discovery():
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            assert self.path == "/us-east-1_Pool/.well-known/openid-configuration", self.path
            body = json.dumps(
                {
                    "issuer": f"{url}/us-east-1_Pool",
                    "authorization_endpoint": "https://happypaws.auth.us-east-1.amazoncognito.com/oauth2/authorize",
                    "token_endpoint": "https://happypaws.auth.us-east-1.amazoncognito.com/oauth2/token",
                }
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"{url}/us-east-1_Pool"
    server.shutdown()


def run_deploy(scratch, issuer, *extra):
    bin_dir = scratch / "bin"
    uploads = scratch / "uploads"
    bin_dir.mkdir()
    uploads.mkdir()
    aws = bin_dir / "aws"
    aws.write_text(FAKE_AWS.replace("PYTHON", sys.executable))
    aws.chmod(0o755)
    outputs = [
        {"OutputKey": "ApiUrl", "OutputValue": "https://abc123.execute-api.us-east-1.amazonaws.com/"},
        {"OutputKey": "WebUrl", "OutputValue": "https://d111111abcdef8.cloudfront.net/"},
        {"OutputKey": "WebBucketName", "OutputValue": "vetchat-webbucket-1a2b3c"},
        {"OutputKey": "WebDistributionId", "OutputValue": "E2QWRUHEXAMPLE"},
        {"OutputKey": "JwtIssuer", "OutputValue": issuer},
        {"OutputKey": "WebClientId", "OutputValue": "4abcdefclientid"},
    ]
    (scratch / "outputs.json").write_text(json.dumps(outputs))
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        FAKE_AWS_LOG=str(scratch / "calls.jsonl"),
        FAKE_AWS_OUTPUTS=str(scratch / "outputs.json"),
        FAKE_AWS_UPLOADS=str(uploads),
    )
    done = subprocess.run(
        [str(ROOT / "scripts" / "deploy-web"), "--stack-name", "vetchat", "--region", "us-east-1", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = [json.loads(line) for line in (scratch / "calls.jsonl").read_text().splitlines()]
    return done, calls, uploads


def test_deploy_web_uploads_the_pages_with_the_config_made_from_the_stack(scratch, discovery):
    done, calls, uploads = run_deploy(scratch, discovery)
    assert done.returncode == 0, done.stderr
    config = json.loads((uploads / "config.json").read_text())
    assert config == {
        "api_base": "https://abc123.execute-api.us-east-1.amazonaws.com",
        "auth": {
            "mode": "oauth",
            "issuer": discovery,
            "client_id": "4abcdefclientid",
            "scope": "openid",
            "token": "access_token",
            "authorization_endpoint": "https://happypaws.auth.us-east-1.amazoncognito.com/oauth2/authorize",
            "token_endpoint": "https://happypaws.auth.us-east-1.amazoncognito.com/oauth2/token",
            "redirect_uri": "https://d111111abcdef8.cloudfront.net/",
            "logout_endpoint": "https://happypaws.auth.us-east-1.amazoncognito.com/logout",
        },
        "max_windows_per_day": json.loads((ROOT / "web" / "config.json").read_text())["max_windows_per_day"],
    }
    sync, cp, invalidation = calls[1:]
    assert sync[:6] == ["--region", "us-east-1", "s3", "sync", f"{ROOT}/web/", "s3://vetchat-webbucket-1a2b3c/"]
    assert {"--delete", "--cache-control", "no-cache"} <= set(sync) and sync[sync.index("--exclude") + 1] == "config.json"
    assert cp[2:4] == ["s3", "cp"] and cp[4].endswith("/config.json") and cp[5] == "s3://vetchat-webbucket-1a2b3c/config.json"
    assert cp[cp.index("--content-type") + 1] == "application/json"
    assert invalidation[2:] == ["cloudfront", "create-invalidation", "--distribution-id", "E2QWRUHEXAMPLE", "--paths", "/*"]
    # The token endpoint is on Cognito's domain, not the issuer's host: the deploy says what the CSP needs.
    assert "WebSignInOrigin parameter must be that origin" in done.stdout
    assert "https://happypaws.auth.us-east-1.amazoncognito.com" in done.stdout


def test_deploy_web_dry_run_changes_nothing(scratch, discovery):
    done, calls, uploads = run_deploy(scratch, discovery, "--client-id", "other-client", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert [c[2:4] for c in calls] == [["cloudformation", "describe-stacks"]]
    assert '"client_id": "other-client"' in done.stdout
    assert "nothing was changed" in done.stdout
    assert list(uploads.iterdir()) == []
