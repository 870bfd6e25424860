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
        # folds its sums in (add_sums) whenever the meter is read.
        self.sources: list = []

    def attach(self, source) -> None:
        """source(meter) is called before every read of this meter, to add
        the sums it kept since the last read (once, however often attached)."""
        if source not in self.sources:
            self.sources.append(source)

    def _fold(self) -> None:
        for fold in self.sources:
            fold(self)

    def add(self, values: dict[str, torch.Tensor]) -> None:
        # fp32 sums: bf16 would round a long interval away
        self.add_sums(
            {key: value.detach().float() for key, value in values.items()}, dict.fromkeys(values, 1)
        )

    def add_sums(self, sums: dict[str, torch.Tensor], counts: dict[str, int]) -> None:
        """Add sums of counts[key] values each, kept elsewhere (fp32 tensors)."""
        for key, value in sums.items():
            if key in self.sums:
                # .to: sums restored from a checkpoint come back on the CPU
                self.sums[key] = self.sums[key].to(value.device) + value
                self.counts[key] += counts[key]
            else:
                # a copy: the source may reuse its tensor (a graph's static sums)
                self.sums[key] = value.clone()
                self.counts[key] = counts[key]

    def nonfinite(self) -> list[str]:
        """The keys whose sum since the last `means()` is inf or nan."""
        self._fold()
        return [key for key, value in self.sums.items() if not torch.isfinite(value).all()]

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
