"""Measuring generators: the paper's Parzen protocol, mode coverage on the 2-D mixtures, and
classifier-based quality and diversity for digits. Every function here takes plain numpy arrays
of samples, so a run (torch) and an exported model (onnxruntime) are measured by the same code."""
