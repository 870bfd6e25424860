"""eval.inception=PATH: the FID, Inception score and KID that papers report,
computed by torch-fidelity from Inception weights the user already has (the
`pt_inception-2015-12-05` file that torch-fidelity and pytorch-fid download
on first use), never downloaded here.

The numbers follow torch-fidelity's settings, which reproduce the TensorFlow
originals: images as 8-bit RGB (one channel repeated three times), resized to
299x299 as TensorFlow 1.x's bilinear resize does; FID on the 2,048 pool
features; the Inception score over 10 splits; KID as the unbiased MMD with the
cubic polynomial kernel over 100 subsets of up to 1,000 images. Real images
are a seeded sample of the data set as large as the generated one, so a run
with eval.num_samples=50000 scores as mimicry's tables (50,000 real and
generated); SNGAN's paper used 10,000 real and 5,000 generated.
"""

from pathlib import Path

import torch
from torch.utils.data import Dataset

from gan_cli.errors import UserError
from gan_cli.output.pictures import to_pixels

REAL_SEED = 7  # the real sample is the same at every evaluation and in every run
# Keys that only torch-fidelity's Inception-v3 state dict has.
INCEPTION_KEYS = ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight", "fc.weight")
ISC_SPLITS = 10


class UInt8Images(Dataset):
    """A [N, 3, H, W] uint8 tensor as the Dataset torch-fidelity reads."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def rgb_uint8(images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] floats in [-1, 1] (G's scale) -> uint8 [N, 3, H, W], rounded
    as the PNG files gan-sample writes, so scoring these or those PNGs agrees."""
    pixels = torch.from_numpy(to_pixels((images.detach().float().cpu() + 1) / 2)).movedim(-1, 1)
    return pixels.expand(-1, 3, -1, -1).contiguous() if pixels.shape[1] == 1 else pixels


def check_weights(path) -> Path:
    """The weights file, or one line saying why it will not do."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(
            f"eval.inception={path}: no such file (give the Inception weights file, "
            f"e.g. pt_inception-2015-12-05-6726825d.pth)"
        )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, truncated, pickled code
        raise UserError(
            f"eval.inception={path}: not a readable weights file ({type(exc).__name__})"
        ) from None
    missing = [k for k in INCEPTION_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise UserError(f"eval.inception={path}: not torch-fidelity's Inception-v3 weights (no {missing[0]})")
    return file


def real_sample(images: torch.Tensor, count: int) -> torch.Tensor:
    """A seeded sample of `count` of the data set's uint8 images (all when fewer), as RGB."""
    if len(images) > count:
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(REAL_SEED))
        images = images[order[:count].sort().values]
    return images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images


def inception_metrics(
    fake: torch.Tensor, real: torch.Tensor, weights, device: torch.device
) -> dict[str, float]:
    """eval/fid_inception, eval/is and eval/kid_inception of uint8 RGB images
    `fake` against `real`, by torch-fidelity with the weights at `weights`."""
    file = check_weights(weights)
    if min(len(fake), len(real)) < ISC_SPLITS:
        raise UserError(
            f"Inception metrics need at least {ISC_SPLITS} images each, got {len(fake)} generated"
        )
    # Late: torch-fidelity and its Inception net load only for runs that ask for them.
    import torch_fidelity

    try:
        values = torch_fidelity.calculate_metrics(
            input1=UInt8Images(fake),
            input2=UInt8Images(real),
            fid=True,
            isc=True,
            kid=True,
            feature_extractor_weights_path=str(file),
            kid_subset_size=min(1000, len(fake), len(real)),
            cuda=device.type == "cuda",
            cache=False,
            save_cpu_ram=True,  # no DataLoader worker processes: the images are in memory already
            verbose=False,
        )
    except RuntimeError as exc:  # weights of another shape: load_state_dict's error
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"eval.inception={weights}: torch-fidelity cannot use these weights ({first})"
        ) from None
    return {
        "eval/fid_inception": float(values["frechet_inception_distance"]),
        "eval/is": float(values["inception_score_mean"]),
        "eval/kid_inception": float(values["kernel_inception_distance_mean"]),
    }
