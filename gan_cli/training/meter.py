"""Meter: running sums of the loop's losses and estimates between log lines,
kept as tensors so the step never waits on the device."""

import torch


class Meter:
    """Running sums kept on the device: adding a loss never waits for the
    device; `means()` reads them back once per logging interval."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        # Sums kept elsewhere (a CUDA graph's static ones): each source(meter)
        # folds its sums in whenever the meter is read.
        self.sources: list = []

    def _fold(self) -> None:
        for fold in self.sources:
            fold(self)

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for key, value in values.items():
            value = value.detach().float()  # fp32 sums: bf16 would round a long interval away
            if key in self.sums:
                # .to: sums restored from a checkpoint come back on the CPU
                self.sums[key] = self.sums[key].to(value.device) + value
                self.counts[key] += 1
            else:
                self.sums[key] = value.clone()
                self.counts[key] = 1

    def all_finite(self) -> bool:
        """True when no loss since the last `means()` was inf or nan (one sync)."""
        self._fold()
        if not self.sums:
            return True
        return bool(torch.isfinite(torch.stack([v.float() for v in self.sums.values()])).all())

    def state_dict(self) -> dict:
        self._fold()
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        self.sums = dict(state.get("sums", {}))
        self.counts = dict(state.get("counts", {}))

    def means(self) -> dict[str, float]:
        self._fold()
        if not self.sums:
            return {}
        keys = list(self.sums)
        values = torch.stack([self.sums[k].float() for k in keys]).tolist()  # one sync
        means = {k: v / self.counts[k] for k, v in zip(keys, values, strict=True)}
        self.sums.clear()
        self.counts.clear()
        return means
