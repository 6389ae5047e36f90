"""Reports: the CLI (terminal, --json, exit codes), the HTML logged to the run and rendered
in headless Chromium, and the Prefect flow's summary."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient
from PIL import Image
from typer.testing import CliRunner

from scenellm.audit.checks import FAIL
from scenellm.audit.report import audit
from scenellm.audit.report_html import render_html
from scenellm.cli.main import app

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str | None:
    """The chromium binary; installed with apt only when SCENELLM_INSTALL_CHROMIUM=1."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("SCENELLM_INSTALL_CHROMIUM") == "1":
        subprocess.run(
            ["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=900, check=False
        )
        found = shutil.which("chromium")
    return found


def cli(env, monkeypatch, *args: str):
    monkeypatch.chdir(env.repo.root)
    return CliRunner().invoke(app, ["audit", *args])


def test_cli_json_exit_code_and_html_copy(env, monkeypatch, tmp_path):
    result = cli(
        env, monkeypatch, env.run_id, "--json", "--no-log", "--html", str(tmp_path / "audit.html")
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verdict"] == "pass" and data["run"]["run_id"] == env.run_id
    assert data["logged"] is None
    assert 'id="lineage-graph"' in (tmp_path / "audit.html").read_text()


def test_cli_fails_with_exit_code_1_naming_the_broken_link(env, monkeypatch):
    fp = (
        MlflowClient(env.tracking_uri)
        .get_run(env.run_id)
        .data.tags["scenellm.stage.prepare.fingerprint"]
    )
    extra = env.home / "artifacts" / "stages" / "prepare" / fp[:16] / "extra.txt"
    extra.write_text("x")
    try:
        result = cli(env, monkeypatch, env.run_id, "--no-log")
    finally:
        extra.unlink()
    assert result.exit_code == 1
    assert "AUDIT FAILED" in result.output and "broken links: stage.prepare.output" in result.output
    assert cli(env, monkeypatch, "nonsense", "--no-log").exit_code == 2


def test_report_is_logged_to_the_run_and_renders_in_chromium(env, tmp_path):
    report = audit("scenellm@champion", env.repo)
    client = MlflowClient(env.tracking_uri)
    tags = client.get_run(env.run_id).data.tags
    assert tags["scenellm.audit.verdict"] == "pass" and report.logged.startswith("audit/")
    logged = {a.path for a in client.list_artifacts(env.run_id, report.logged)}
    assert logged == {f"{report.logged}/report.html", f"{report.logged}/audit.json"}
    html = Path(
        client.download_artifacts(env.run_id, f"{report.logged}/report.html", str(tmp_path))
    )
    text = html.read_text()  # self-contained: nothing to fetch, nothing to run
    assert not any(s in text for s in ("<script", "src=", "<link", "@import", "href="))
    binary = chromium()
    if binary is None:
        pytest.skip(
            "chromium is not installed (apt-get install chromium, or set "
            "SCENELLM_INSTALL_CHROMIUM=1)"
        )
    base = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "report.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1200,900", html.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    dom = subprocess.run(
        [*base, "--dump-dom", html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 900)
    assert len(image.getcolors(1 << 20)) > 50  # text, boxes and edges, not a blank page
    assert image.getpixel((10, 10)) == (0x1A, 0x7F, 0x37)  # the green verdict banner
    assert '<svg id="lineage-graph"' in dom and "AUDIT PASSED" in dom
    for node in ("data", "prepare", "features", "vqvae", "finetune", "evaluate", "model"):
        assert f'data-node="{node}" data-status="pass"' in dom


def test_failed_verdict_in_html_and_flow_summary(env):
    report = audit(env.run_id, env.repo, log=False)
    report.checks[0].status, report.checks[0].detail = FAIL, "made up"
    html = render_html(report)
    assert "AUDIT FAILED" in html and '<header class="fail"' in html
    assert f"broken links: {report.checks[0].link}" in html
    spec = importlib.util.spec_from_file_location("audit_flow", REPO / "flows" / "audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.audit.name == "audit"
    summary = module.summary_markdown(report)
    assert "**fail**" in summary and "made up" in summary
