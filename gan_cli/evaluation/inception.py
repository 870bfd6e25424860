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

import torch
from torch.utils.data import Dataset

from gan_cli.config.checks import check_inception_weights
from gan_cli.errors import UserError
from gan_cli.models.inference import generate
from gan_cli.output.pictures import to_pixels

REAL_SEED = 7  # the real sample is the same at every evaluation and in every run
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
    file = check_inception_weights(weights)
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


CHUNK = 500  # images generated at a time: bounded memory


def inception_scores(G, latent, num_classes: int, data, weights, num_samples: int, device) -> dict:
    """The Inception metrics of `num_samples` images of G (classes in turn,
    when conditional) against as many of the data set's images."""
    fake = []
    for start in range(0, num_samples, CHUNK):
        n = min(CHUNK, num_samples - start)
        y = torch.arange(start, start + n, device=latent.device) % num_classes if num_classes else None
        fake.append(rgb_uint8(generate(G, latent.sample(n), y)))
    return inception_metrics(
        torch.cat(fake), real_sample(data.images, num_samples), weights, torch.device(device)
    )
