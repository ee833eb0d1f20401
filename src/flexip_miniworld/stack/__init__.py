"""The miniature FlexIP stack, trained by the project from scratch on the miniworld.

One module per stage (`autoencoder`, `clip`, `dino`, `unet`, `adapter`), the CLIP `tokenizer` of the
caption grammar, `ship` (the preset folder and its manifest) and `build` (the one command that runs
them all, resumably). `common` holds the resumable, deterministic training loop they share.
Command: `flexip miniworld build WORKDIR [--stages ...] [--resume] [--device ...]`.
"""
