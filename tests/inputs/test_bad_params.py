"""Bad params and bad names stop at the door with one line naming where the value came
from (``--set KEY`` or ``FILE:LINE``), the key and the rule."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scenellm.cli.main import app
from scenellm.config.load import load_params
from scenellm.config.names import check_name
from scenellm.errors import UserError

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Bad:
    name: str
    where: str  # the message starts with this: "--set KEY" or "{dir}/FILE.yaml:LINE"
    rule: str  # regex the rest of the message matches
    overrides: tuple[str, ...] = ()
    files: dict[str, str | bytes] = field(default_factory=dict)  # written into params/


def vq(text: str) -> dict[str, str]:
    return {"vqvae.yaml": "vqvae:\n" + text}


BAD = [
    # --set overrides
    Bad("bool as int", "--set vqvae.codebook_size", "expected a number, not true/false",
        ("vqvae.codebook_size=true",)),
    Bad("infinite float", "--set ot.epsilon", "finite number", ("ot.epsilon=.inf",)),
    Bad("nan float", "--set ot.epsilon", "finite number", ("ot.epsilon=.nan",)),
    Bad("inf as text", "--set vqvae.lr", "finite number", ("vqvae.lr=inf",)),
    Bad("M not below K", "--set vqvae.codebook_size",
        r"ot.num_scene_tokens \(32\) must be smaller than vqvae.codebook_size \(16\)",
        ("ot.source=codes", "vqvae.codebook_size=16")),
    Bad("M raised to K", "--set ot.num_scene_tokens", "must be smaller than vqvae.codebook_size",
        ("ot.source=codes", "ot.num_scene_tokens=512")),
    Bad("misspelt key", "--set vqvae.codebok_size", "did you mean 'vqvae.codebook_size'",
        ("vqvae.codebok_size=3",)),
    Bad("misspelt section", "--set vqae.lr", "vqae: unknown section; did you mean 'vqvae'",
        ("vqae.lr=1",)),
    Bad("unknown choice", "--set model.temporal", "'lstm' is not allowed; choose one of: ot",
        ("model.temporal=lstm",)),
    Bad("misspelt choice", "--set llm.mode", "did you mean 'lora'", ("llm.mode=lora2",)),
    Bad("unknown device", "--set finetune.device", "expected auto, cpu, cuda or cuda:N",
        ("finetune.device=gpu",)),
    Bad("holdout of 1.5", "--set vqvae.holdout", "less than 1", ("vqvae.holdout=1.5",)),
    Bad("empty validation share", "--set finetune.val_fraction", "greater than 0",
        ("finetune.val_fraction=0",)),
    Bad("decay of 1", "--set vqvae.decay", "less than 1", ("vqvae.decay=1",)),
    Bad("value not YAML", "--set vqvae.lr", "not valid YAML", ("vqvae.lr=[1,",)),
    Bad("key without section", "--set epochs", "use section.key=value", ("epochs=3",)),
    Bad("override without value", "--set vqvae.epochs", "expected key=value", ("vqvae.epochs",)),
    Bad("int beyond 32 bits", "--set vqvae.codebook_size", "less than or equal to 2147483647",
        ("vqvae.codebook_size=10000000000",)),
    Bad("float for an int", "--set vqvae.codebook_size", "valid integer",
        ("vqvae.codebook_size=1e40",)),
    Bad("negative seed", "--set vqvae.seed", "greater than or equal to 0", ("vqvae.seed=-1",)),
    Bad("no LoRA targets", "--set lora.target_modules", "at least 1 item",
        ("lora.target_modules=[]",)),
    Bad("quantised full fine-tuning", "--set llm.quantization",
        "llm.quantization=8bit needs llm.mode lora or frozen, not full",
        ("llm.quantization=8bit", "llm.mode=full")),
    Bad("mode twice", "--set evaluate.modes", "lists a mode twice",
        ("evaluate.modes=[predcls, predcls]",)),
    Bad("timeout of an unknown stage", "--set orchestration.timeout_seconds.prep",
        "did you mean 'prepare'", ("orchestration.timeout_seconds.prep=3",)),
    Bad("cron of one field", "--set orchestration.retrain_cron", "five cron fields",
        ("orchestration.retrain_cron=daily",)),
    Bad("tiny synthetic frames", "--set data.synth_width", "greater than or equal to 32",
        ("data.synth_width=8",)),
    Bad("key below a number", "--set vqvae.lr.x", "'lr' is not a section", ("vqvae.lr.x=1",)),
    Bad("number for a flag", "--set finetune.mixed_precision", "valid boolean",
        ("finetune.mixed_precision=2",)),
    # params files
    Bad("empty params file", "{dir}/vqvae.yaml", "empty params file", files={"vqvae.yaml": ""}),
    Bad("comments only", "{dir}/vqvae.yaml", "empty params file",
        files={"vqvae.yaml": "# nothing here\n"}),
    Bad("binary params file", "{dir}/vqvae.yaml", "not UTF-8 text",
        files={"vqvae.yaml": b"\x89PNG\r\n\x1a\n\x00\xff\xfe"}),
    Bad("NUL byte in UTF-8", "{dir}/vqvae.yaml:2:7", "not valid YAML",
        files={"vqvae.yaml": "vqvae:\n  lr: \x00\n"}),
    Bad("YAML syntax error", "{dir}/vqvae.yaml:3:1", "not valid YAML",
        files=vq("  codebook_size: [1, 2\n")),
    Bad("tab indentation", "{dir}/vqvae.yaml:2:1", "not valid YAML", files=vq("\tlr: 0.1\n")),
    Bad("key twice in a file", "{dir}/vqvae.yaml:3", "'vqvae.lr' is given twice",
        files=vq("  lr: 0.1\n  lr: 0.2\n")),
    Bad("unknown key in a file", "{dir}/vqvae.yaml:3",
        "vqvae.codebok_size: unknown key; did you mean 'vqvae.codebook_size'",
        files=vq("  lr: 0.1\n  codebok_size: 3\n")),
    Bad("yes as int in a file", "{dir}/vqvae.yaml:2", "vqvae.codebook_size: expected a number",
        files=vq("  codebook_size: yes\n")),
    Bad(".inf in a file", "{dir}/vqvae.yaml:2", "vqvae.lr: must be a finite number",
        files=vq("  lr: .inf\n")),
    Bad("list at the top", "{dir}/vqvae.yaml", "expected a mapping of sections",
        files={"vqvae.yaml": "- vqvae\n"}),
    Bad("section in two files", "{dir}/vqvae.yaml:1", r"defined in two params files \(also "
        r".*extra.yaml:1\)", files={"extra.yaml": "vqvae:\n  lr: 0.1\n"}),
    Bad("M not below K in a file", "{dir}/vqvae.yaml:2", "must be smaller than vqvae.codebook_size",
        ("ot.source=codes",), files=vq("  codebook_size: 8\n")),
    Bad("section that is a number", "{dir}/vqvae.yaml:1", "vqvae: must be a valid dictionary",
        files={"vqvae.yaml": "vqvae: 3\n"}),
]  # fmt: skip


@pytest.fixture
def params_dir(tmp_path) -> Path:
    shutil.copytree(REPO / "params", tmp_path / "params")
    return tmp_path / "params"


def _write(params_dir: Path, files: dict) -> None:
    for name, content in files.items():
        path = params_dir / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_bad_params_give_one_line_naming_origin_key_and_rule(bad, params_dir):
    _write(params_dir, bad.files)
    with pytest.raises(UserError) as info:
        load_params(params_dir, list(bad.overrides))
    message = str(info.value)
    assert "\n" not in message
    where = bad.where.format(dir=params_dir)
    assert message.startswith(f"{where}: "), message
    assert re.search(bad.rule, message[len(where):]), message


def test_the_table_holds_at_least_25_cases():
    assert len(BAD) >= 25 and len({b.name for b in BAD}) == len(BAD)


def test_repository_params_pass(params_dir):
    load_params(params_dir, ["vqvae.codebook_size=64", "ot.num_scene_tokens=16"])


@pytest.mark.parametrize("name", ["bool as int", "binary params file", "YAML syntax error"])
def test_stage_command_exits_2_with_the_same_line(name, params_dir):
    bad = BAD[[b.name for b in BAD].index(name)]
    _write(params_dir, bad.files)
    sets = [arg for item in bad.overrides for arg in ("--set", item)]
    out = subprocess.run([sys.executable, "-m", "scenellm.cli.main", "stage", "prepare",
                          "--params", str(params_dir), *sets], cwd=params_dir.parent,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"error: {bad.where.format(dir=params_dir)}: ")


BAD_NAMES = ["../../x", "/tmp/abs", "a/b", "my study", ".hidden", "", "x" * 101, "a..b",
             "-rf", "name\n", "tab\tname"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_study_name_is_refused_in_one_line(name):
    with pytest.raises(UserError, match=r"study name .* is not allowed: use 1-100 letters") as e:
        check_name(name, "study")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["sweep-1", "K512_r8", "2024.06.01", "a" * 100])
def test_good_study_name_passes(name):
    assert check_name(name, "study") == name


def test_study_report_refuses_a_name_that_leaves_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENELLM_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["study", "report", "../../x"])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "study name '../../x' is not allowed" in line
    assert list(tmp_path.iterdir()) == []  # no store, no report anywhere


def test_tune_request_refuses_a_path_as_study_name(tmp_path):
    from scenellm.project import Project
    from scenellm.search.study import TuneRequest

    with pytest.raises(UserError, match="study name '/abs/x' is not allowed"):
        TuneRequest("/abs/x", Project(tmp_path))
