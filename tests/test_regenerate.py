"""benchmarks/regenerate.py: its table matches the committed reports, and its CLI plans, resumes and stops."""

import importlib.util
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "regenerate.py"
SHIPPED = sorted(p.name for p in (ROOT / "worldsim" / "shipped").iterdir() if p.is_dir())

spec = importlib.util.spec_from_file_location("regenerate", SCRIPT)
assert spec is not None and spec.loader is not None
regenerate = importlib.util.module_from_spec(spec)
sys.modules["regenerate"] = regenerate  # dataclasses look their module up there
spec.loader.exec_module(regenerate)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("artefact", regenerate.ARTEFACTS, ids=lambda a: f"{a.model}:{a.path}:{a.command[:40]}")
def test_every_listed_file_exists_and_states_its_command_verbatim(artefact):
    assert (ROOT / artefact.path).is_file(), artefact.path
    text = (ROOT / artefact.source).read_text()
    # As a whole `code span` or a whole line of a code block: a prefix of a longer command does not count.
    assert f"`{artefact.command}`" in text or artefact.command in text.splitlines(), (artefact.command, artefact.source)
    if artefact.stated_in:
        assert artefact.path in text or artefact.path in artefact.command, f"{artefact.source} does not name {artefact.path}"


def test_the_table_covers_exactly_the_shipped_models_and_what_a_command_reads_comes_first():
    assert sorted({a.model for a in regenerate.ARTEFACTS}) == SHIPPED
    paths = {a.path: a for a in regenerate.ARTEFACTS}
    for artefact in regenerate.ARTEFACTS:
        if artefact.after:
            assert paths[artefact.after].model == artefact.model
            order = regenerate.ordered([a for a in regenerate.ARTEFACTS if a.model == artefact.model])
            assert order.index(paths[artefact.after]) < order.index(artefact)


@pytest.mark.parametrize("model", SHIPPED)
def test_dry_run_lists_the_fidelity_report_cheapest_first(model):
    result = cli("--model", model, "--dry-run")
    assert result.returncode == 0, result.stderr
    data = [line for line in result.stdout.splitlines() if line.lstrip().startswith("data ")]
    lines = [line for line in result.stdout.splitlines() if line not in data]
    assert len(data) == sum(d.model == model for d in regenerate.HELD_OUT)
    assert len(lines) == sum(a.model == model for a in regenerate.ARTEFACTS)
    assert any(line.split(maxsplit=2)[2].startswith(f"worldsim bench fidelity model={model} out=") for line in lines)
    known = [float(line.split()[0]) for line in lines if not line.lstrip().startswith("?")]
    assert known and known == sorted(known)


def test_a_bad_model_is_one_line_naming_the_accepted_ones():
    result = cli("--model", "ball", "--dry-run")
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"regenerate: unknown --model 'ball'; accepted: {', '.join(SHIPPED)}"]


def test_a_run_resumes_after_its_last_finished_command_and_stops_at_a_failure(tmp_path, monkeypatch):
    marks = tmp_path / "marks.txt"

    def step(name: str, code: int = 0) -> str:
        return shlex.join(["python", "-c", f"open({str(marks)!r}, 'a').write({name!r}); raise SystemExit({code})", name])

    table = [regenerate.Artefact("balls", f"p/{name}", step(name), minutes) for name, minutes in (("a", 1), ("b", 2), ("c", None))]
    monkeypatch.setattr(regenerate, "ARTEFACTS", table)
    logs = tmp_path / "logs"
    regenerate.main(["--model", "balls", "--logs", str(logs)])
    assert marks.read_text() == "abc" and (logs / "done.txt").read_text().splitlines() == [a.run for a in table]
    regenerate.main(["--model", "balls", "--logs", str(logs)])  # all done: nothing runs
    assert marks.read_text() == "abc"
    regenerate.main(["--model", "balls", "--logs", str(logs), "--force", "--only", "p/b"])
    assert marks.read_text() == "abcb"
    regenerate.main(["--model", "balls", "--logs", str(logs), "--force", "--skip", "p/b"])
    assert marks.read_text() == "abcbac"
    with pytest.raises(SystemExit, match="no command or path of balls contains --only 'p/' \\(and not --skip 'p/'\\)"):
        regenerate.main(["--model", "balls", "--logs", str(logs), "--only", "p/", "--skip", "p/"])

    table[1] = regenerate.Artefact("balls", "p/b", step("b", 3), 2)  # a new command for b, which fails
    (logs / "done.txt").unlink()
    with pytest.raises(SystemExit) as stop:
        regenerate.main(["--model", "balls", "--logs", str(logs)])
    log = logs / "02-p_b.log"
    assert stop.value.code == f"regenerate: `{table[1].run}` failed with exit code 3; log: {log}"
    assert marks.read_text() == "abcbacab" and log.is_file()  # c did not run after b failed
    assert (logs / "done.txt").read_text().splitlines() == [table[0].run]


def test_every_held_out_collection_a_command_reads_has_its_recipe_collect_command():
    for artefact in regenerate.ARTEFACTS:
        words = shlex.split(artefact.run)
        if "--data" in words:
            folder = words[words.index("--data") + 1]
            (data,) = [d for d in regenerate.HELD_OUT if d.folder == folder and d.model == artefact.model]
            assert data.command.endswith(f" out={folder}")
            recipe = (ROOT / data.stated_in).read_text()
            # The recipe states world, policy and seed of each collection (the sizes' episode counts in words).
            for word in shlex.split(data.command)[2:]:
                if word.split("=")[0] in ("world", "policy", "seed", "epsilon"):
                    assert word in recipe, (word, data.stated_in)
