"""minigpt-rlhf: InstructGPT (Ouyang et al., 2022) in miniature, from scratch in PyTorch."""

__version__ = "0.1.0"
