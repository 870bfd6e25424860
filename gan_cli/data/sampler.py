"""Batches drawn by index from a data set preloaded on the training device
(or, too large for memory, memory-mapped on the host)."""

from dataclasses import dataclass

import torch

from gan_cli.rng import restore_generator


@dataclass
class Batch:
    x: torch.Tensor  # [B, *shape], float, scaled to [-1, 1] for images
    y: torch.Tensor | None  # [B] int64 class labels, or None
    index: torch.Tensor  # [B] positions in the data set (mse's fixed pairing)


def to_unit_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0..255 -> floats in [-1, 1], the scale G is trained to produce."""
    return pixels.float() / 127.5 - 1.0


class TensorSampler:
    """Shuffled epochs over a uint8 image tensor kept on the device, or on
    the host with keep_on_host (a memory-mapped cache larger than the memory
    budget: each batch is gathered from the mapping and only it is copied to
    the device).

    Pixels stay uint8 until a batch is drawn (a quarter of float32's memory traffic), and the
    only per-batch work is one gather and one scale. The shuffle uses its own
    seeded generator; `state_dict` captures it with the epoch position.

    Drawing is split in two for those who gather elsewhere (other processes'
    rows of a global batch, a CUDA graph reading positions from a device
    buffer): `next_indices` / `coming_indices` / `skip` move through the
    epochs on the host, `gather` turns positions into a batch on the device.
    The batch size was checked against the data set's size by
    gan_cli.config.checks.check_built_data.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None,
        batch_size: int,
        device: torch.device,
        seed: int,
        keep_on_host: bool = False,
    ):
        self.on_device = not keep_on_host  # what a CUDA graph can gather from
        self.images = images if keep_on_host else images.to(device)
        self.labels = None if labels is None else labels.to(device)
        self.batch_size = batch_size
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)
        self.position = 0

    def __len__(self) -> int:
        return len(self.images)

    def next_indices(self) -> torch.Tensor:
        """The next batch's positions in the data set (on the CPU); the
        epoch moves on as `next` moves it (CUDA graphs draw through this)."""
        if self.position + self.batch_size > len(self.order):  # new epoch, drop the ragged end
            self.order = torch.randperm(len(self.images), generator=self.generator)
            self.position = 0
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return index

    def coming_indices(self, batches: int) -> torch.Tensor:
        """The next `batches` batches' positions, [batches, batch_size] on the
        CPU, as that many `next_indices` would give them; the sampler itself
        does not move on."""
        generator, order, position = self.generator.get_state(), self.order, self.position
        rows = torch.stack([self.next_indices() for _ in range(batches)])
        self.generator.set_state(generator)
        self.order, self.position = order, position
        return rows

    def skip(self, batches: int) -> None:
        """Move on as drawing `batches` batches would (they were gathered elsewhere)."""
        for _ in range(batches):
            self.next_indices()

    def next(self) -> Batch:
        return self.gather(self.next_indices())

    def gather(self, index: torch.Tensor) -> Batch:
        """The batch at these positions in the data set (several processes
        each gather their own rows of one global batch's positions). Positions
        already on the device are used as they are: no copy, no wait on the
        host, so a CUDA graph can capture this."""
        if self.on_device:
            index = index.to(self.device)
            x = to_unit_range(self.images[index])
        else:  # the rows read from the host's mapping, then uint8 to the device
            rows = self.images[index.cpu()]
            index = index.to(self.device)
            x = to_unit_range(rows.to(self.device))
        y = None if self.labels is None else self.labels[index]
        return Batch(x, y, index)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self.order, "position": self.position}

    def load_state_dict(self, state: dict) -> bool:
        """False when the saved shuffle came from another device type (re-seeded)."""
        self.order = state["order"].cpu()
        self.position = int(state["position"])
        return restore_generator(self.generator, state["generator"])


class DrawSampler:
    """Fresh examples every batch from `draw(n, generator) -> (x, y)` (2D toys,
    stacked digits), `scale` applied to x. The seeded generator is its whole
    state, so a resumed run draws exactly the batches an uninterrupted one would."""

    def __init__(self, draw, batch_size: int, device: torch.device, seed: int, scale=None):
        self.draw, self.scale = draw, scale
        self.batch_size = batch_size
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.index = torch.arange(batch_size, device=device)

    def next(self) -> Batch:
        x, y = self.draw(self.batch_size, self.generator)
        return Batch(x if self.scale is None else self.scale(x), y, self.index)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> bool:
        """False when the saved draws came from another device type (re-seeded)."""
        return restore_generator(self.generator, state["generator"])
