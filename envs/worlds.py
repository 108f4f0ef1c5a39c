"""The world registry: one record per world, holding everything worldsim needs to know about it.

Gymnasium's registry knows an id and an entry point; worldsim's consumers need more: the dream
twin's id (registration, :mod:`worldsim.envs.dream`), action names (dream envs' errors), the
viewer's key map (:mod:`worldsim.viewer`), the scripted controller and which scenarios are tasks
(:mod:`worldsim.data.policies`), the command line's ``world=`` choices and world arguments
(:mod:`worldsim.cli`), and benchmark settings (:mod:`worldsim.bench.fidelity`,
:mod:`worldsim.bench.rl`). Each of them reads it here, so a new world is its env plus one
:class:`World` in :data:`WORLDS` (and ``configs/world/NAME.yaml``, the command line's defaults).

=====================  =========================================================================
field                  read by
=====================  =========================================================================
``name``               the CLI's ``world=`` choices (``configs/world/NAME.yaml`` holds defaults)
``title``              the world in messages and reports
``env_id``             everyone: the real world's Gymnasium id (a model's ``config.env_id``)
``dream_id``           registration; hints in dream envs' errors
``entry_point``        registration of the real id
``actions``            dream envs: names of the ``Discrete`` actions, in errors
``env_args``           ``worldsim collect`` / ``agent``: top-level CLI keys handed to ``gym.make``
``scenarios``          ``scenario=`` choices (``all`` expands to them; the env names its own in
                       ``env.unwrapped.scenario``); empty: the world has none
``splits``             ``split=`` choices (in / out of distribution); empty: none
``max_steps_arg``      the env's own episode-length argument (None: Gymnasium's ``max_episode_steps``)
``tasks``              scenarios with a task (a reward to earn); None: every episode is one
``scripted``           the task's controller ``act(info) -> action`` (``policy=scripted``; ``auto``
                       uses it on tasks and no-ops elsewhere)
``keys``               the viewer's key map
``rollout_policy``     ``bench fidelity``: the policy of held-out episodes per scenario (default ``auto``)
``heads_policy``       ``bench fidelity``: the policy of the reward/termination head episodes
``balls``              frames show balls that :func:`worldsim.metrics.parse_balls` reads
                       (``bench physics``, long-rollout validity, ``worldsim demo``)
``shows_end``          ``shows_end(frame) -> bool``: whether a frame's pixels show a state the
                       env ends at (``benchmarks/dream_episodes.py --frame-ends``); None: not read
``rl_scenario``        ``bench rl``: the task agents learn when ``scenario=all``
``rl_return_target``   ``bench rl``: the real return the dream-trained agent must reach (None: beat
                       model-free at the last mark)
=====================  =========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from worldsim.errors import UserError

from . import balls, cartpole

IDLE = ("none", "alternate")


@dataclass(frozen=True)
class KeyMap:
    """The held keys that act in one world: pygame key name -> action, and the action of a frame
    with none held: ``idle="none"`` action 0, ``"alternate"`` 0 and 1 in turn (a world without a no-op)."""

    keys: Mapping[str, int]
    idle: str
    help: str

    def action(self, held: Iterable[str], step: int) -> int:
        for name in held:
            if name in self.keys:
                return self.keys[name]
        return step % 2 if self.idle == "alternate" else 0


@dataclass(frozen=True)
class World:
    """Everything worldsim knows about one world (the module docstring says who reads each field)."""

    name: str
    title: str
    env_id: str
    dream_id: str
    entry_point: str
    actions: tuple[str, ...]
    env_args: tuple[str, ...]
    keys: KeyMap
    scenarios: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    max_steps_arg: str | None = None
    tasks: tuple[str, ...] | None = None
    scripted: Callable[[dict[str, Any]], int] | None = None
    rollout_policy: Mapping[str, str] = field(default_factory=dict)
    heads_policy: str = "auto"
    balls: bool = False
    shows_end: Callable[[Any], bool] | None = None
    rl_scenario: str | None = None
    rl_return_target: float | None = None

    def is_task(self, scenario: str | None) -> bool:
        """Whether episodes of ``scenario`` (None: a world without scenarios) have a task."""
        return self.tasks is None or scenario in self.tasks

    def scripted_for(self, scenario: str | None) -> Callable[[dict[str, Any]], int] | None:
        """The scripted controller of ``scenario``'s task, or None where there is none."""
        return self.scripted if self.is_task(scenario) else None

    def policy_for_rollouts(self, scenario: str | None) -> str:
        return self.rollout_policy.get(scenario, "auto") if scenario is not None else "auto"

    def check_scenarios(self, chosen: Iterable[str] | str | None) -> list[str | None]:
        """``chosen`` (a name, a list, ``all`` or None: all) as a list of this world's scenarios
        ([None] for a world without them), or a UserError naming the unknown one."""
        if not self.scenarios:
            return [None]
        names: list[str | None] = list(self.scenarios) if chosen in (None, "all") else [chosen] if isinstance(chosen, str) else list(chosen)
        unknown = [s for s in names if s not in self.scenarios]
        if unknown:
            raise UserError(f"unknown {self.title} scenario {unknown[0]!r}; choose one of {', '.join(self.scenarios)} or all")
        return names


WORLDS: tuple[World, ...] = (
    World(
        name="balls",
        title="Balls",
        env_id="worldsim/Balls-v0",
        dream_id="worldsim/DreamBalls-v0",
        entry_point="worldsim.envs.balls:BallsEnv",
        actions=balls.ACTIONS,
        env_args=("frame_size", "split"),
        keys=KeyMap(
            {"up": 1, "w": 1, "down": 2, "s": 2, "left": 3, "a": 3, "right": 4, "d": 4}, "none", "arrows / WASD: push the red ball"
        ),
        scenarios=balls.SCENARIOS,
        splits=balls.SPLITS,
        max_steps_arg="max_steps",
        tasks=("push",),
        scripted=balls.push_toward_target,
        # The scripted push reaches its target within the horizon too often: held-out push episodes are random pushes.
        rollout_policy={"push": "random"},
        balls=True,
        rl_scenario="push",
    ),
    World(
        name="cartpole",
        title="pixel CartPole",
        env_id="worldsim/CartPole-v0",
        dream_id="worldsim/DreamCartPole-v0",
        entry_point="worldsim.envs.cartpole:make_pixel_cartpole",
        actions=cartpole.ACTIONS,
        env_args=("frame_size",),
        keys=KeyMap(
            {"left": 0, "a": 0, "right": 1, "d": 1}, "alternate", "left / right (A / D): push the cart; none: left and right in turn"
        ),
        scripted=cartpole.balance_pole,
        # The balancing policy rarely lets the pole fall; the termination head must see ends.
        heads_policy="random",
        shows_end=cartpole.shows_end,
        rl_return_target=475.0,
    ),
)
BY_ID = {world.env_id: world for world in WORLDS}
BY_NAME = {world.name: world for world in WORLDS}


def world(env_id: str) -> World:
    """The world whose real id is ``env_id``, or a UserError listing the registered ones."""
    if env_id not in BY_ID:
        raise UserError(f"{env_id!r} is not a worldsim world; registered: {', '.join(BY_ID)}")
    return BY_ID[env_id]


def world_named(name: str) -> World:
    """The world called ``name`` (the CLI's ``world=``), or a UserError listing the names."""
    if name not in BY_NAME:
        raise UserError(f"unknown world {name!r}; choose one of {', '.join(BY_NAME)}")
    return BY_NAME[name]


def world_of(env: gym.Env) -> World | None:
    """The world a real env made by ``gym.make`` belongs to (by its id), or None."""
    spec = env.unwrapped.spec
    return BY_ID.get(spec.id) if spec is not None else None
