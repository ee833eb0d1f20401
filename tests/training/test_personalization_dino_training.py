"""Training an adapter with `personalization_dino`: the DINO context of C_pers learns."""

from __future__ import annotations

import torch

from flexip.training.trainer import Trainer


def test_training_with_it_learns_the_dino_context(tmp_path, write_dataset, make_config, reset_accelerate):
    manifest = write_dataset(tmp_path / "data", images=2, videos=2)
    adapter = {"personalization_dino": True}
    # no weight decay, so that a parameter changes only by its gradient: at step 1 the DINO context's gradient is
    # zero (the blocks' outputs start at zero), at step 2 it flows through the updated outputs
    optim = {"max_steps": 2, "weight_decay": 0.0}
    config = make_config(manifest, tmp_path / "out", model={"base": "tiny-random", "adapter": adapter}, optim=optim)
    trainer = Trainer(config)
    before = {k: v.clone() for k, v in trainer.adapter.state_dict().items() if "dino_context" in k}
    assert before and trainer.adapter.config.personalization_dino
    result = trainer.train()
    assert result.step == 2
    after = trainer.adapter.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it received gradients through C_pers
    reset_accelerate()
