"""Restoring a torch.Generator from a checkpoint that may come from another
device type: a CUDA generator's state (seed and offset, 16 bytes) cannot
become a CPU generator's (Mersenne Twister, 5,056 bytes) or the reverse."""

import hashlib

import torch


def restore_generator(generator: torch.Generator, state: torch.Tensor) -> bool:
    """Set `generator` to `state`; True when it was restored exactly. A state
    saved on another device type instead seeds it from the state's bytes, so
    a resumed run is still reproducible, though not the straight run's stream."""
    try:
        generator.set_state(state)
        return True
    except RuntimeError:
        if state.numel() == generator.get_state().numel():     # same kind: a real error
            raise
    digest = hashlib.sha256(state.cpu().numpy().tobytes()).digest()
    generator.manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return False
