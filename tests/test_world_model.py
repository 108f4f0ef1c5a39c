"""WorldModelConfig's action space: the typed record reads and writes worldsim.json's dict unchanged."""

import json
import math

import gymnasium as gym
import numpy as np
import pytest
from tiny_world_model import save_tiny_world_model

from worldsim.errors import UserError
from worldsim.model.action_space import ActionSpace
from worldsim.model.world_model import CONFIG_FILE, WorldModel, WorldModelConfig, load, shipped_models

BOX = {"type": "box", "shape": [2, 3], "low": [[-1.0, -2.0, -3.0], [0, 0, 0]], "high": [[1.0, 2.0, 3.0], [1, 1, math.inf]]}


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "discrete", "n": 5},
        {"type": "box", "shape": [2], "low": [-1.0, -1.0], "high": [1.0, 1.0]},
        BOX,  # nested bounds, ints kept as ints, an infinite bound
        {"type": "box", "shape": [], "low": -0.5, "high": 0.5},  # a scalar Box
    ],
)
def test_the_dict_round_trips_exactly(raw):
    space = ActionSpace.from_dict(json.loads(json.dumps(raw)))
    assert json.dumps(space.to_dict()) == json.dumps(raw)  # same keys, order, nesting and number types
    assert ActionSpace.from_dict(space.to_dict()) == space


def test_fields_and_helpers():
    discrete, box = ActionSpace.from_dict({"type": "discrete", "n": 5}), ActionSpace.from_dict(BOX)
    assert discrete == ActionSpace("discrete", n=5) and discrete.discrete and discrete.shape == () and discrete.dim == 0
    assert not box.discrete and box.n == 0 and box.shape == (2, 3) and box.dim == 6
    assert box.low == (-1.0, -2.0, -3.0, 0, 0, 0) and box.high[-1] == math.inf  # flattened, row-major
    assert str(discrete) == "Discrete(5)" and str(box).startswith("Box([[-1.0, -2.0, -3.0], [0, 0, 0]]")


def test_from_gym_writes_the_dict_that_training_always_wrote():
    assert ActionSpace.from_gym(gym.spaces.Discrete(3, start=1)).to_dict() == {"type": "discrete", "n": 3}
    box = gym.spaces.Box(np.array([[-1, -2]], np.float32), np.array([[1, 2.5]], np.float32))
    assert ActionSpace.from_gym(box).to_dict() == {"type": "box", "shape": [1, 2], "low": box.low.tolist(), "high": box.high.tolist()}
    with pytest.raises(UserError, match=r"support Discrete and Box action spaces, not MultiDiscrete"):
        ActionSpace.from_gym(gym.spaces.MultiDiscrete([2, 3]))


@pytest.mark.parametrize(
    "raw, message",
    [
        ([1, 2], "action_space must be a dict like"),
        ({"n": 5}, "action_space.type must be 'discrete' or 'box', got None"),
        ({"type": "Discrete", "n": 5}, "action_space.type must be 'discrete' or 'box', got 'Discrete'"),
        ({"type": "discrete"}, r"action_space lacks \['n'\]: a discrete space has exactly the keys \['type', 'n'\]"),
        ({"type": "discrete", "n": 5, "shape": [1]}, r"action_space has unknown key\(s\) \['shape'\]"),
        ({"type": "discrete", "n": 0}, "action_space.n must be an integer >= 1 .*got 0"),
        ({"type": "discrete", "n": True}, "action_space.n must be an integer >= 1 .*got True"),
        ({"type": "discrete", "n": "5"}, "action_space.n must be an integer >= 1 .*got '5'"),
        ({"type": "box", "shape": [2], "low": [0, 0]}, r"action_space lacks \['high'\]"),
        ({"type": "box", "shape": 2, "low": [0, 0], "high": [1, 1]}, "action_space.shape must be a list of integers >= 1, got 2"),
        ({"type": "box", "shape": [0], "low": [], "high": []}, r"action_space.shape must be a list of integers >= 1, got \[0\]"),
        ({"type": "box", "shape": [2], "low": [0], "high": [1, 1]}, r"action_space.low must be numbers nested as shape \[2\], got \[0\]"),
        ({"type": "box", "shape": [2], "low": [0, 0], "high": [[1, 1]]}, r"action_space.high must be numbers nested as shape \[2\]"),
        ({"type": "box", "shape": [2], "low": [0, "a"], "high": [1, 1]}, "action_space.low must be 2 numbers"),
        ({"type": "box", "shape": [2], "low": [0, math.nan], "high": [1, 1]}, "action_space.low must be 2 numbers"),
        ({"type": "box", "shape": [2], "low": [0, 2], "high": [1, 1]}, "action_space.low must be <= action_space.high everywhere"),
    ],
)
def test_a_bad_dict_is_a_one_line_error_naming_the_field(raw, message):
    with pytest.raises(UserError, match=message) as error:
        ActionSpace.from_dict(raw)
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match=message):
        WorldModelConfig(action_space=raw)  # a dict given to the config is read the same way


def test_a_model_folder_stores_the_same_dict_and_refuses_a_bad_one(tmp_path):
    folder = save_tiny_world_model(tmp_path / "model")
    raw = json.loads((folder / CONFIG_FILE).read_text())
    assert raw["action_space"] == {"type": "discrete", "n": 5}
    assert load(folder).config.action_space == ActionSpace("discrete", n=5)
    raw["action_space"] = {"type": "discrete", "n": -1}
    (folder / CONFIG_FILE).write_text(json.dumps(raw))
    with pytest.raises(UserError, match=f"^{folder / CONFIG_FILE}: action_space.n must be an integer >= 1"):
        WorldModel.from_pretrained(folder)


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_every_shipped_model_loads_and_would_save_its_worldsim_json_byte_for_byte(name):
    folder = shipped_models()[name]
    model = load(name)
    assert model.config.action_space.discrete
    assert json.dumps(model.config.to_dict(), indent=2) == (folder / CONFIG_FILE).read_text()  # as save_pretrained writes it
