"""The reasoner (DeepDubber-V1 stage 1): output contract and parser; model and trainers later."""
