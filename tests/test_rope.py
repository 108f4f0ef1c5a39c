import pytest
import torch

from worldsim.model.rope import apply_rotary, axis_dims, grid_positions, rotary_angles


def test_axis_bands_cover_the_head():
    for head_dim in (6, 16, 32, 64, 96):
        dims = axis_dims(head_dim)
        assert sum(dims) == head_dim and all(d % 2 == 0 and d > 0 for d in dims)
    with pytest.raises(ValueError, match="even and >= 6"):
        axis_dims(7)


def test_grid_positions_are_t_major():
    pos = grid_positions(2, 2, 3, t_offset=5)
    assert pos.shape == (12, 3)
    assert pos[0].tolist() == [5, 0, 0] and pos[1].tolist() == [5, 0, 1] and pos[3].tolist() == [5, 1, 0]
    assert pos[6].tolist() == [6, 0, 0]


def test_scores_depend_only_on_position_differences():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(pq, pk):
        a = apply_rotary(q, rotary_angles(torch.tensor([pq], dtype=torch.float), 16))
        b = apply_rotary(k, rotary_angles(torch.tensor([pk], dtype=torch.float), 16))
        return (a * b).sum()

    base = score([3, 1, 2], [1, 0, 0])
    torch.testing.assert_close(score([13, 5, 7], [11, 4, 5]), base, rtol=0, atol=1e-5)
    assert not torch.allclose(score([3, 1, 2], [2, 0, 0]), base)


def test_rotation_keeps_norms():
    x = torch.randn(2, 3, 5, 16)
    rotated = apply_rotary(x, rotary_angles(grid_positions(5, 1, 1), 16))
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))


def test_far_positions_keep_their_relative_precision():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(offset):
        pq = torch.tensor([[offset + 3.0, 1.0, 2.0]])
        pk = torch.tensor([[offset + 1.0, 0.0, 0.0]])
        return (apply_rotary(q, rotary_angles(pq, 16)) * apply_rotary(k, rotary_angles(pk, 16))).sum()

    torch.testing.assert_close(score(1_000_000.0), score(0.0), rtol=0, atol=1e-4)
