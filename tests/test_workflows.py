"""The website's publishing workflow (.github/workflows/pages.yml), checked as `make lint-workflows` checks it.

Two tools, both offline: zizmor's security audits (an action referenced by a tag, which its owner can
move to other code; a write permission granted to every job; a checkout that leaves the token in
.git/config, from where an uploaded artifact can carry it away) and check-jsonschema with GitHub's
workflow schema, vendored in the package. Each is shown to pass the real workflow and to fail a copy
that has the fault it is there to catch; the tools run with the network cut off (a network namespace
where `unshare` works, and always proxies that lead nowhere), so a check that tried to download
something would fail here rather than pass on a machine that happens to be online.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "pages.yml"
BIN = Path(sys.executable).parent
# owner/repo@<40 hex digits>  # vMAJOR.MINOR.PATCH: a commit for the runner, its release for the reader
PINNED_USES = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w.-]+@[0-9a-f]{40}\s+#\s+v\d+\.\d+\.\d+\s*$")
USES = re.compile(r"^\s*(?:-\s+)?uses:", re.M)


@functools.cache
def network_namespace_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def run_offline(*command: str) -> subprocess.CompletedProcess[str]:
    """Run a tool from the course environment with no way out to the network and no GitHub token."""
    env = {k: v for k, v in os.environ.items() if k not in {"GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN"}}
    dead_end = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once
    env.update(HTTP_PROXY=dead_end, HTTPS_PROXY=dead_end, ALL_PROXY=dead_end, NO_PROXY="",
               http_proxy=dead_end, https_proxy=dead_end, all_proxy=dead_end, no_proxy="")
    tool = BIN / command[0]
    assert tool.exists(), f"{tool} is missing: install the course environment (make install)"
    argv = [str(tool), *command[1:]]
    if network_namespace_works():
        argv = ["unshare", "-rn", *argv]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)


def zizmor(path: Path) -> tuple[int, set[str], str]:
    """zizmor's exit status, the audits that found something, and its report, for one workflow file.
    Ignore comments and configuration files are not honoured: nothing may be hidden from it."""
    done = run_offline("zizmor", "--offline", "--no-ignores", "--no-config", "--format", "json", str(path))
    findings = json.loads(done.stdout)
    return done.returncode, {finding["ident"] for finding in findings}, done.stdout + done.stderr


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    return run_offline("check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(path))


def edited(text: str, old: str, new: str) -> str:
    assert old in text, f"the workflow no longer contains {old!r}: update this test's bad copy"
    return text.replace(old, new)


def test_the_workflow_passes_zizmor():
    status, audits, report = zizmor(WORKFLOW)
    assert (status, audits) == (0, set()), report


def test_the_workflow_matches_githubs_workflow_schema():
    done = schema_check(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_fails_a_copy_with_a_tag_a_workflow_wide_write_and_persisted_credentials(tmp_path):
    text = WORKFLOW.read_text(encoding="utf-8")
    text = edited(text, "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683  # v4.2.2", "actions/checkout@v4")
    text = edited(text, "persist-credentials: false", "fetch-depth: 1")
    text = edited(text, "permissions: {}", "permissions:\n  contents: read\n  pages: write\n  id-token: write")
    # and the build job, with no permissions of its own, inherits those
    text = edited(text, "    permissions:\n      contents: read  # to check out the repository\n", "")
    bad = tmp_path / "pages.yml"
    bad.write_text(text, encoding="utf-8")
    status, audits, report = zizmor(bad)
    assert status != 0, report
    assert {"unpinned-uses", "excessive-permissions", "artipacked"} <= audits, report
    assert schema_check(bad).returncode == 0, "the bad copy is a valid workflow: only zizmor can catch it"


@pytest.mark.parametrize(("old", "new"), [
    ("pages: write", "pages: admin"),  # no such permission level (read, write, none)
    ("runs-on: ubuntu-latest", "runs_on: ubuntu-latest"),  # a misspelt key: the job has no runner
])
def test_the_schema_check_fails_an_invalid_copy(tmp_path, old, new):
    bad = tmp_path / "pages.yml"
    bad.write_text(edited(WORKFLOW.read_text(encoding="utf-8"), old, new), encoding="utf-8")
    done = schema_check(bad)
    assert done.returncode != 0, done.stdout + done.stderr


def test_every_action_is_pinned_to_a_commit_with_its_release_in_a_comment():
    lines = [line for line in WORKFLOW.read_text(encoding="utf-8").splitlines() if USES.match(line)]
    assert len(lines) == 5, lines
    loose = [line.strip() for line in lines if not PINNED_USES.match(line)]
    assert not loose, f"pin each action as owner/repo@<40-hex commit>  # vX.Y.Z: {loose}"
    assert not PINNED_USES.match("      - uses: actions/checkout@v4")
    assert not PINNED_USES.match("      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683")


def test_each_job_gets_only_the_permissions_it_uses():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert workflow["permissions"] == {}
    assert workflow["jobs"]["build"]["permissions"] == {"contents": "read"}
    assert workflow["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
