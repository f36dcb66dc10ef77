"""The pull-request workflow refers to things that exist and runs what the README says."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "pull-request.yml"


def steps(job: dict) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_workflow_runs_tests_and_posts_the_report() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as True
    jobs = workflow["jobs"]
    assert "make test" in steps(jobs["test"])
    report = steps(jobs["report"])
    for command in ("make setup", "dvc repro", "scripts/pr_report.sh", "gh pr comment"):
        assert command in report
    assert workflow["permissions"]["pull-requests"] == "write"
    script = REPO / "scripts" / "pr_report.sh"
    assert script.exists() and os.access(script, os.X_OK)


def test_no_credentials_in_the_workflow() -> None:
    text = WORKFLOW.read_text()
    for line in text.splitlines():
        if "AWS_SECRET_ACCESS_KEY:" in line or "AWS_ACCESS_KEY_ID:" in line:
            assert "${{ secrets." in line
