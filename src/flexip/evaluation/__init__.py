"""Evaluation as in the paper (docs/evaluation.md): DreamBench, five metrics, mRank, γ / scale sweeps.

Data flows one way: images → `backbones` (embeddings) → `metrics` (pure functions) → `scoring`
(per image, subject, live/object, overall) → `results` (JSON files) → `ranking` (mRank) and `report`
(plots, `curves` statistics). `dreambench` reads the benchmark; `runner` and `baselines` generate
images with FlexIP and IP-Adapter for it. Nothing heavy is imported here.
"""
