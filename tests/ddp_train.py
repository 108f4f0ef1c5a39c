"""Run by tests/test_training.py under torchrun: two DDP steps on gloo; each rank writes a checksum
of its weights so the test can check that the ranks agree."""

import sys
from pathlib import Path

import torch.distributed as dist

from worldsim.training.config import ModelConfig, TrainConfig
from worldsim.training.loop import train

data, out = sys.argv[1], Path(sys.argv[2])
model = ModelConfig(hidden_size=32, depth=2, num_heads=2, text_dim=32, text_depth=1, text_heads=2)
result = train([data], out, 2, model, TrainConfig(batch_size=4, window_lengths=[3], log_every=1), device="cpu", progress=False)
checksum = sum(float(p.double().sum()) for p in result.model.parameters())
(out / f"rank{dist.get_rank()}.sum").write_text(repr(checksum))
dist.destroy_process_group()
