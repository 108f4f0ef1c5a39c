"""Do a model's dream episodes end and pay like the real ones? Closed loop, per simple policy.

    python benchmarks/dream_episodes.py --model cartpole [--episodes 16] [--max-steps 100] \
        [--seed 4000000] [--world-kwargs '{"scenario": "push"}'] [--sampler-steps K] [--precision bfloat16] \
        [--policies P.zip ...] [--frame-ends] [--out FOLDER]

For the uniformly random policy and for every constant action it runs ``episodes`` real episodes
(seeds ``seed, seed + 1, ...``) and as many dream episodes (``episodes`` dream envs reset with
``seed``, each starting from its real twin's context), both cut at ``max-steps``, and reports the
mean length and return of each (:func:`worldsim.bench.rl.episodes_real_and_dreamed`), then the same
for each saved SB3 PPO policy of ``--policies`` (deterministic, its own stacked frames; e.g. one trained
on the real env by ``benchmarks/agent_defaults.py --save``), the dream
with the model's own sampler steps or ``--sampler-steps``, in ``--precision`` (the simulator's). An agent
trained in the dream learns what the dream pays. ``--frame-ends`` (worlds whose frames show their ends:
cartpole) also gives the dream episodes' length had each ended at its first frame whose pixels show
an end (the pole past 12 degrees, read by ``envs.cartpole.parse``, about 0.2 s a frame): a dream
episode that outlasts its frames' end is the termination head's miss, one that does not is the
dynamics' forgiveness. Prints a markdown table and, with ``--out``,
writes it (``dream_episodes.md``) with a JSON of the figures.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from worldsim.atomic import write_table
from worldsim.bench.rl import episodes_markdown, episodes_real_and_dreamed
from worldsim.model.world_model import load
from worldsim.simulator import PRECISIONS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a world model: shipped name, model or run folder")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=4_000_000)
    parser.add_argument("--world-kwargs", type=json.loads, default={}, help='JSON, e.g. \'{"scenario": "push"}\'')
    parser.add_argument("--sampler-steps", type=int, default=None, help="sampler steps per dream frame (default: the model's)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32", help="the dream simulator's passes")
    parser.add_argument("--policies", nargs="+", default=[], help="saved SB3 PPO policies (.zip) to run in both as well")
    parser.add_argument("--frame-ends", action="store_true", help="also end dream episodes where a frame shows an end")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    model = load(args.model)
    if args.sampler_steps is not None:
        if args.sampler_steps < 1:
            parser.error(f"--sampler-steps must be an integer >= 1, got {args.sampler_steps}")
        model.config.sampler_steps = args.sampler_steps
    bad = [p for p in args.policies if not (p.endswith(".zip") and Path(p).is_file())]
    if bad:
        parser.error(f"--policies takes saved SB3 policy files (.zip); {bad[0]!r} is not one")
    rows = episodes_real_and_dreamed(
        model,
        args.episodes,
        args.seed,
        args.max_steps,
        policies=args.policies,
        precision=args.precision,
        frame_ends=args.frame_ends,
        **args.world_kwargs,
    )
    text = episodes_markdown(
        rows,
        f"Model `{args.model}` ({model.config.env_id}, {args.world_kwargs or 'default world'}): "
        f"{args.episodes} episodes per policy from seed {args.seed}, cut at {args.max_steps} steps. "
        f"`python benchmarks/dream_episodes.py {shlex.join(sys.argv[1:])}`",
    )
    print(text, end="")
    if args.out is not None:
        figures = {
            "model": args.model,
            "world_kwargs": args.world_kwargs,
            "episodes": args.episodes,
            "seed": args.seed,
            "max_steps": args.max_steps,
            "rows": rows,
        }
        write_table(args.out, "dream_episodes", text, figures)


if __name__ == "__main__":
    main()
