"""The process-wide random generators: seeding them all from a run's seed,
saving and restoring their states with a checkpoint, and restoring a
torch.Generator from a checkpoint that may come from another device type: a
CUDA generator's state (seed and offset, 16 bytes) cannot become a CPU
generator's (Mersenne Twister, 5,056 bytes) or the reverse."""

import hashlib
import random

import numpy as np
import torch

# The largest seed: every generator a run seeds (its own from seed + a few,
# evaluation/refine.py) takes it, where torch refuses anything past 2**64 - 1.
MAX_SEED = 2**63 - 1


def seed_everything(seed: int) -> None:
    """torch's (CPU and every CUDA device), numpy's and Python's global
    generators from one seed, as Lightning's seed_everything does: a data set
    or plug-in drawing from any of them repeats, and a checkpoint's saved
    states are the same in every run of a config."""
    torch.manual_seed(seed)
    # numpy takes 32-bit seeds; a larger one goes in as its 32-bit words, so
    # different seeds still give different streams.
    words = [seed] if seed < 2**32 else [(seed >> s) & 0xFFFFFFFF for s in range(0, seed.bit_length(), 32)]
    np.random.seed(words[0] if len(words) == 1 else words)
    random.seed(seed)


def restore_generator(generator: torch.Generator, state: torch.Tensor) -> bool:
    """Set `generator` to `state`; True when it was restored exactly. A state
    saved on another device type instead seeds it from the state's bytes, so
    a resumed run is still reproducible, though not the straight run's stream."""
    try:
        generator.set_state(state)
        return True
    except RuntimeError:
        if state.numel() == generator.get_state().numel():  # same kind: a real error
            raise
    digest = hashlib.sha256(state.cpu().numpy().tobytes()).digest()
    generator.manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return False


def global_rng_state() -> dict:
    """torch (CPU and CUDA), numpy and Python random states, as tensors and
    plain lists so the checkpoint loads with weights_only=True."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }


def set_global_rng_state(state: dict) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
