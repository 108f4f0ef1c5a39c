"""Regenerates every committed report and README figure that depends on a shipped model.

    python benchmarks/regenerate.py --model balls [--dry-run] [--only SUBSTRING] [--skip SUBSTRING] \
        [--force] [--logs runs/regenerate/balls]

A new shipped model comes with every report and figure made from it regenerated in the same change.
``ARTEFACTS`` lists them: per shipped model, the committed file, its command exactly as stated where
it was recorded (the report's header; for a figure, the README or the recipe that made it), and
the run time the report states. ``--only`` keeps the commands whose command line or path contains a
substring, ``--skip`` drops them (``--skip runs/rl-`` leaves out the RL benchmark, hours on a CPU,
and the reports made from its runs). ``--dry-run`` prints the commands in the order they run: cheapest
first, those of unstated cost last, and a command that reads another's output (the RL benchmark's
work folder) after it. Otherwise they run one after another from the repository root, each with its
output in a log under ``--logs``; ``done.txt`` there records every finished command, so a rerun
after a kill skips those (``--force`` runs them again). The first failure stops the run.
``tests/test_regenerate.py`` checks each command against the file that states it.

The figures typed into the README from these reports are pasted again by hand.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from worldsim.atomic import atomic_write

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Artefact:
    """A committed report or figure made from a shipped model, and the command that makes it."""

    model: str  # the shipped model it is made from
    path: str  # the committed file, from the repository root
    command: str  # verbatim as ``source`` states it
    minutes: float | None  # the run time the report states; None where it states none
    stated_in: str = ""  # the file stating the command, where that is not ``path`` (a figure)
    extra: str = ""  # arguments the stated command lacks, appended to it when run
    after: str = ""  # the ``path`` of the artefact whose command writes this one's input
    copy_from: str = ""  # where the command writes the file, copied to ``path`` afterwards

    @property
    def source(self) -> str:
        return self.stated_in or self.path

    @property
    def run(self) -> str:
        return f"{self.command} {self.extra}".strip()


STABILITY = "benchmarks/results/stability/stability.md"
RL_PUSH = "benchmarks/results/rl-push/rl.md"
RL_CARTPOLE = "benchmarks/results/rl-cartpole/rl.md"

ARTEFACTS = [
    # balls
    Artefact(
        "balls",
        "benchmarks/results/fidelity/fidelity.md",
        "worldsim bench fidelity model=balls out=benchmarks/results/fidelity progress=false",
        854 / 60,
    ),
    Artefact(
        "balls",
        "benchmarks/results/physics/physics.md",
        "worldsim bench physics model=balls out=benchmarks/results/physics progress=false",
        158 / 60,
    ),
    Artefact(
        "balls",
        "benchmarks/results/speed-balls/speed.md",
        "worldsim bench speed model=balls 'sampler_steps=[1,2,4]' 'batch_sizes=[1,16,64]' 'window_batch_sizes=[1]' compile=true bf16=true "
        "threads=1 device=cpu progress=false out=benchmarks/results/speed-balls",
        200 / 60,
    ),
    # next_frame.py's --out defaults to benchmarks/results/next_frame, another model's report, and
    # these reports' headers leave it out: ``extra`` names each report's own folder.
    Artefact(
        "balls",
        "benchmarks/results/shipped/balls-next-frame-32x32/next_frame.md",
        "python benchmarks/next_frame.py --model balls --data /work/data/balls32-heldout --samples 256 --context 3 --steps 3",
        21 / 60,
        extra="--out benchmarks/results/shipped/balls-next-frame-32x32",
    ),
    Artefact(
        "balls",
        "benchmarks/results/shipped/balls-next-frame-32x48/next_frame.md",
        "python benchmarks/next_frame.py --model balls --data /work/data/balls32x48-heldout --samples 128 --context 3 --steps 3",
        19 / 60,
        extra="--out benchmarks/results/shipped/balls-next-frame-32x48",
    ),
    Artefact(
        "balls",
        "benchmarks/results/shipped/balls-next-frame-24x24/next_frame.md",
        "python benchmarks/next_frame.py --model balls --data /work/data/balls24x24-heldout --samples 128 --context 3 --steps 3",
        6 / 60,
        extra="--out benchmarks/results/shipped/balls-next-frame-24x24",
    ),
    Artefact(
        "balls",
        "benchmarks/results/dream-episodes-push/dream_episodes.md",
        """python benchmarks/dream_episodes.py --model balls --world-kwargs '{"scenario": "push"}' """
        "--out benchmarks/results/dream-episodes-push",
        None,
    ),
    Artefact(
        "balls",
        "benchmarks/results/soak/soak.md",
        "python benchmarks/soak.py --model balls --envs 16 --steps 10000 --every 250 --out benchmarks/results/soak",
        None,
    ),
    Artefact(
        "balls",
        RL_PUSH,
        "worldsim bench rl model=balls seeds=3 real_steps=20000 iterations=4 model_steps=200 dream_steps=10000 threads=1 "
        "progress=false work=runs/rl-push out=benchmarks/results/rl-push",
        77,
    ),
    Artefact(
        "balls",
        STABILITY,
        "python benchmarks/stability.py --model shipped=balls --setting 'shipped (trained with context noise up to 0.1)'",
        None,
    ),
    Artefact(
        "balls",
        STABILITY,
        "python benchmarks/stability.py --model shipped-k1=balls --sampler-steps 1 --setting 'shipped, 1 sampler step per frame'",
        None,
    ),
    Artefact(
        "balls",
        STABILITY,
        "python benchmarks/stability.py --model shipped-k2=balls --sampler-steps 2 --setting 'shipped, 2 sampler steps per frame'",
        None,
    ),
    Artefact(
        "balls",
        STABILITY,
        "python benchmarks/stability.py --model shipped-cn0.2=balls --context-noise 0.2 --setting 'shipped, inference context noise 0.2'",
        None,
    ),
    Artefact(
        "balls",
        "benchmarks/results/stability/sheets/shipped.png",
        "python benchmarks/long_rollout_sheet.py --model balls --out benchmarks/results/stability/sheets/shipped.png",
        None,
        stated_in="benchmarks/results/stability/recipes.md",
    ),
    # The README: "(`worldsim demo`, `runs/demo/real_vs_dream.png`)"; `make demo` takes "about 1 min".
    Artefact("balls", "docs/real_vs_dream.png", "worldsim demo", 1, stated_in="README.md", copy_from="runs/demo/real_vs_dream.png"),
    Artefact(
        "balls",
        "benchmarks/results/dream-episodes-push-dyna/dream_episodes.md",
        """python benchmarks/dream_episodes.py --model runs/rl-push/seed_0/world/iter_003 --world-kwargs '{"scenario": "push"}' """
        "--out benchmarks/results/dream-episodes-push-dyna",
        None,
        after=RL_PUSH,
    ),
    Artefact(
        "balls",
        "benchmarks/results/policy-sensitivity-push/policy_sensitivity.md",
        """python benchmarks/policy_sensitivity.py --env worldsim/Balls-v0 --env-kwargs '{"scenario": "push"}' --frame-size 32 32 """
        "--policies runs/rl-push/seed_0/policy.zip runs/rl-push/seed_0/model_free.zip runs/rl-push/seed_1/policy.zip "
        "runs/rl-push/seed_1/model_free.zip runs/rl-push/seed_2/policy.zip runs/rl-push/seed_2/model_free.zip "
        "--out benchmarks/results/policy-sensitivity-push",
        None,
        after=RL_PUSH,
    ),
    # cartpole
    Artefact(
        "cartpole",
        "benchmarks/results/fidelity-cartpole/fidelity.md",
        "worldsim bench fidelity model=cartpole out=benchmarks/results/fidelity-cartpole progress=false",
        26 / 60,
    ),
    Artefact(
        "cartpole",
        "benchmarks/results/sampler-steps-cartpole/k1/fidelity.md",
        "worldsim bench fidelity model=cartpole sampler_steps=1 videos=0 progress=false out=benchmarks/results/sampler-steps-cartpole/k1",
        34 / 60,
    ),
    Artefact(
        "cartpole",
        "benchmarks/results/sampler-steps-cartpole/k2/fidelity.md",
        "worldsim bench fidelity model=cartpole sampler_steps=2 videos=0 progress=false out=benchmarks/results/sampler-steps-cartpole/k2",
        46 / 60,
    ),
    Artefact(
        "cartpole",
        "benchmarks/results/sampler-steps-cartpole/k4/fidelity.md",
        "worldsim bench fidelity model=cartpole sampler_steps=4 videos=0 progress=false out=benchmarks/results/sampler-steps-cartpole/k4",
        70 / 60,
    ),
    *(
        Artefact(
            "cartpole",
            f"benchmarks/results/sampler-steps-cartpole/k{k}/dream_episodes.md",
            f"python benchmarks/dream_episodes.py --model cartpole --sampler-steps {k} "
            f"--out benchmarks/results/sampler-steps-cartpole/k{k}",
            None,
        )
        for k in (1, 2, 4)
    ),
    Artefact(
        "cartpole",
        "benchmarks/results/shipped/cartpole-next-frame-random/next_frame.md",
        "python benchmarks/next_frame.py --model cartpole --data /work/data2/cp-heldout-random --samples 256 --context 3 --steps 3",
        9 / 60,
        extra="--out benchmarks/results/shipped/cartpole-next-frame-random",
    ),
    Artefact(
        "cartpole",
        "benchmarks/results/shipped/cartpole-next-frame-balancing/next_frame.md",
        "python benchmarks/next_frame.py --model cartpole --data /work/data2/cp-heldout-auto --samples 256 --context 3 --steps 3",
        9 / 60,
        extra="--out benchmarks/results/shipped/cartpole-next-frame-balancing",
    ),
    Artefact(
        "cartpole",
        "benchmarks/results/dream-episodes-cartpole/dream_episodes.md",
        "python benchmarks/dream_episodes.py --model cartpole --out benchmarks/results/dream-episodes-cartpole",
        None,
    ),
    Artefact(
        "cartpole",
        RL_CARTPOLE,
        "worldsim bench rl model=cartpole seeds=3 real_steps=20000 iterations=4 model_steps=200 dream_steps=10000 threads=1 "
        "progress=false work=runs/rl-cartpole out=benchmarks/results/rl-cartpole",
        76,
    ),
    Artefact(
        "cartpole",
        "benchmarks/results/dream-episodes-cartpole-dyna/dream_episodes.md",
        "python benchmarks/dream_episodes.py --model runs/rl-cartpole/seed_0/world/iter_003 "
        "--out benchmarks/results/dream-episodes-cartpole-dyna",
        None,
        after=RL_CARTPOLE,
    ),
    Artefact(
        "cartpole",
        "benchmarks/results/policy-sensitivity-cartpole/policy_sensitivity.md",
        "python benchmarks/policy_sensitivity.py --env worldsim/CartPole-v0 --frame-size 32 32 "
        "--policies runs/rl-cartpole/seed_0/policy.zip runs/rl-cartpole/seed_0/model_free.zip runs/rl-cartpole/seed_1/policy.zip "
        "runs/rl-cartpole/seed_1/model_free.zip runs/rl-cartpole/seed_2/policy.zip runs/rl-cartpole/seed_2/model_free.zip "
        "--out benchmarks/results/policy-sensitivity-cartpole",
        None,
        after=RL_CARTPOLE,
    ),
]


@dataclass(frozen=True)
class HeldOut:
    """Held-out episodes a command reads (not committed): ``folder`` is made by ``command`` when missing.
    The commands are the recipes' (``stated_in``), with the ``out=`` the reports read."""

    model: str
    folder: str
    command: str
    stated_in: str


BALLS_RECIPE, CARTPOLE_RECIPE = "worldsim/shipped/balls/RECIPE.md", "worldsim/shipped/cartpole/RECIPE.md"
# The balls recipe states the 32x32 command and "episodes=100 at the other sizes".
HELD_OUT = [
    HeldOut(
        "balls",
        "/work/data/balls32-heldout",
        "worldsim collect world=balls scenario=all episodes=200 seed=1000000 frame_size=[32,32] out=/work/data/balls32-heldout",
        BALLS_RECIPE,
    ),
    HeldOut(
        "balls",
        "/work/data/balls32x48-heldout",
        "worldsim collect world=balls scenario=all episodes=100 seed=1000000 frame_size=[32,48] out=/work/data/balls32x48-heldout",
        BALLS_RECIPE,
    ),
    HeldOut(
        "balls",
        "/work/data/balls24x24-heldout",
        "worldsim collect world=balls scenario=all episodes=100 seed=1000000 frame_size=[24,24] out=/work/data/balls24x24-heldout",
        BALLS_RECIPE,
    ),
    HeldOut(
        "cartpole",
        "/work/data2/cp-heldout-random",
        "worldsim collect world=cartpole frame_size=[32,32] policy=random episodes=200 seed=1000000 out=/work/data2/cp-heldout-random",
        CARTPOLE_RECIPE,
    ),
    HeldOut(
        "cartpole",
        "/work/data2/cp-heldout-auto",
        "worldsim collect world=cartpole frame_size=[32,32] policy=auto epsilon=0.2 episodes=20 seed=1100000 "
        "out=/work/data2/cp-heldout-auto",
        CARTPOLE_RECIPE,
    ),
]


def held_out(plan: Sequence[Artefact]) -> list[HeldOut]:
    """The held-out collections the commands of ``plan`` read."""
    return [data for data in HELD_OUT if any(f"--data {data.folder} " in f"{a.run} " for a in plan)]


def ordered(artefacts: Sequence[Artefact]) -> list[Artefact]:
    """``artefacts`` cheapest first, those of unstated cost last, each after the one it reads."""
    by_path = {a.path: a for a in ARTEFACTS}

    def depth(artefact: Artefact) -> int:
        return 1 + depth(by_path[artefact.after]) if artefact.after else 0

    return sorted(artefacts, key=lambda a: (depth(a), math.inf if a.minutes is None else a.minutes))


def estimate(artefact: Artefact) -> str:
    return f"{'?' if artefact.minutes is None else f'{artefact.minutes:.1f}':>5} min"


def describe(artefact: Artefact) -> str:
    """The command as run, with the copy that follows it, on one line."""
    copy = f"  (then {artefact.copy_from} -> {artefact.path})" if artefact.copy_from else ""
    return f"{artefact.run}{copy}"


def run_logged(command: str, log: Path, env: dict[str, str]) -> None:
    """Runs ``command`` from the repository root with its output in ``log``; exits with one line
    naming the command and the log if it cannot start or fails."""
    with open(log, "w") as out:
        try:
            code = subprocess.run(shlex.split(command), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        except OSError as error:  # the program itself is missing
            sys.exit(f"regenerate: could not start `{command}`: {error}; log: {log}")
    if code != 0:
        sys.exit(f"regenerate: `{command}` failed with exit code {code}; log: {log}")


def run_all(plan: Sequence[tuple[int, Artefact]], logs: Path, force: bool) -> None:
    """Runs each command of ``plan`` (its position in the model's order, the artefact) not yet in ``logs/done.txt``."""
    logs.mkdir(parents=True, exist_ok=True)
    done_file = logs / "done.txt"
    done = done_file.read_text().splitlines() if done_file.is_file() else []
    if force:
        chosen = {a.run for _, a in plan}
        done = [command for command in done if command not in chosen]
        done_file.write_text("".join(f"{command}\n" for command in done))
    # `python` and `worldsim` in the commands are those of the interpreter running this script.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for data in held_out([a for _, a in plan]):
        if Path(data.folder).is_dir():
            continue
        log = logs / f"data-{Path(data.folder).name}.log"
        print(f"[data] {data.command}  (log: {log})", flush=True)
        run_logged(data.command, log, env)
    for index, artefact in plan:
        if artefact.run in done:
            print(f"[{index}] done before, skipped: {artefact.run}")
            continue
        log = logs / f"{index:02d}-{artefact.path.removeprefix('benchmarks/results/').replace('/', '_')}.log"
        print(f"[{index}] {estimate(artefact)}  {describe(artefact)}  (log: {log})", flush=True)
        start = time.perf_counter()
        run_logged(artefact.run, log, env)
        if artefact.copy_from:
            with atomic_write(ROOT / artefact.path, "wb") as f:
                f.write((ROOT / artefact.copy_from).read_bytes())
        with open(done_file, "a") as f:
            f.write(f"{artefact.run}\n")
        print(f"[{index}] finished in {(time.perf_counter() - start) / 60:.1f} min", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    models = sorted({a.model for a in ARTEFACTS})
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help=f"the shipped model: {', '.join(models)}")
    parser.add_argument("--dry-run", action="store_true", help="print the commands in order with their estimates; run nothing")
    parser.add_argument("--only", default="", metavar="SUBSTRING", help="only the commands or paths that contain SUBSTRING")
    parser.add_argument("--skip", default=None, metavar="SUBSTRING", help="leave out the commands or paths that contain SUBSTRING")
    parser.add_argument("--force", action="store_true", help="rerun the commands that done.txt records as finished")
    parser.add_argument("--logs", type=Path, default=None, help="folder of the logs and done.txt (default: runs/regenerate/MODEL)")
    args = parser.parse_args(argv)
    if args.model not in models:
        sys.exit(f"regenerate: unknown --model {args.model!r}; accepted: {', '.join(models)}")
    order = ordered([a for a in ARTEFACTS if a.model == args.model])
    plan = [(i, a) for i, a in enumerate(order, 1) if args.only in a.run or args.only in a.path]
    if args.skip is not None:
        plan = [(i, a) for i, a in plan if args.skip not in a.run and args.skip not in a.path]
    if not plan:
        sys.exit(f"regenerate: no command or path of {args.model} contains --only {args.only!r} (and not --skip {args.skip!r})")
    if args.dry_run:
        for data in held_out([a for _, a in plan]):
            print(f"  data   {data.command}  (if {data.folder} is missing)")
        for _, artefact in plan:
            print(f"{estimate(artefact)}  {describe(artefact)}")
        return
    run_all(plan, args.logs or ROOT / "runs" / "regenerate" / args.model, args.force)


if __name__ == "__main__":
    main()
