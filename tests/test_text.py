import torch

from worldsim.model.text import BOS, ByteTextEncoder


def test_tokens_mask_and_shapes():
    encoder = ByteTextEncoder(dim=32, depth=1, num_heads=2, max_length=16)
    ids, mask = encoder.tokenize(["ab", "", "x" * 40])
    assert ids.shape == (3, 16) and ids[:, 0].tolist() == [BOS] * 3
    assert mask.sum(1).tolist() == [3, 1, 16]  # the empty caption keeps its BOS token; long ones are cut
    tokens, mask = encoder(["a red ball", ""])
    assert tokens.shape == (2, 11, 32) and torch.isfinite(tokens).all()


def test_padding_does_not_change_a_caption_s_tokens():
    encoder = ByteTextEncoder(dim=32, depth=1, num_heads=2).eval()
    alone, _ = encoder(["red"])
    padded, _ = encoder(["red", "a much longer caption"])
    torch.testing.assert_close(padded[0, :4], alone[0], rtol=0, atol=1e-5)


def test_round_trip(tmp_path):
    encoder = ByteTextEncoder(dim=32, depth=1, num_heads=2).eval()
    encoder.save_pretrained(tmp_path / "t")
    again = ByteTextEncoder.from_pretrained(tmp_path / "t").eval()
    assert torch.equal(encoder(["hello"])[0], again(["hello"])[0])
