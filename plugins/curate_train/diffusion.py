"""``train_diffusion``: a small text-to-image diffusion model (diffusers ``UNet2DConditionModel`` +
``DDPMScheduler``) trained on an imagefolder export (HF ``datasets``), conditioned on the per-token
outputs of a CLIP text tower trained by ``train_clip`` (frozen). After training it samples one
image per color prompt and checks with a pixel oracle whether the prompted color appears.

Oracle: the share of pixels nearest (in RGB) to the prompted color of the world's palette; a color
"appears" when that share is higher for its own prompt than the mean over the other colors'
prompts (so a model that paints every image the same scores 0).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

PROMPT = "a large {} circle"


def text_states(clip: Any, tokens: Any) -> Any:
    """Per-token hidden states of an open_clip text tower (before pooling), shape (B, L, width)."""
    x = clip.token_embedding(tokens) + clip.positional_embedding
    x = clip.transformer(x, attn_mask=clip.attn_mask)
    return clip.ln_final(x)


def color_share(image: Any, color: str) -> float:
    """Share of pixels whose nearest palette color is ``color``."""
    import numpy as np
    from curate_world.api import COLORS

    names = list(COLORS)
    palette = np.array([COLORS[n] for n in names], dtype=np.float32)
    pixels = np.asarray(image, dtype=np.float32).reshape(-1, 3)
    nearest = ((pixels[:, None, :] - palette[None]) ** 2).sum(-1).argmin(1)
    return float((nearest == names.index(color)).mean())


def train_diffusion(data_dir: Path, clip_checkpoint: Path, out: Path, *, steps: int = 300, batch_size: int = 32,
                    resolution: int = 32, lr: float = 3e-4, seed: int = 0, clip_model: str = "tiny",
                    sample_steps: int = 50, echo: Any = None) -> dict[str, Any]:
    import torch
    from curate_world.api import COLORS
    from datasets import load_dataset
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from PIL import Image
    from torchvision import transforms

    from curate_train.clip import load_clip

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    clip, _, tokenizer = load_clip(clip_checkpoint, clip_model)
    clip.requires_grad_(False)
    width = clip.token_embedding.weight.shape[1]
    dataset = load_dataset("imagefolder", data_dir=str(data_dir), split="train")
    to_tensor = transforms.Compose([transforms.Resize(resolution), transforms.CenterCrop(resolution),
                                    transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    unet = UNet2DConditionModel(
        sample_size=resolution, in_channels=3, out_channels=3, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=width, attention_head_dim=8,
        norm_num_groups=8,
    )
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses, started = [], time.monotonic()
    for _ in range(steps):
        index = torch.randint(0, len(dataset), (batch_size,), generator=generator).tolist()
        rows = dataset[index]
        images = torch.stack([to_tensor(image.convert("RGB")) for image in rows["image"]])
        with torch.no_grad():
            states = text_states(clip, tokenizer(rows["text"]))
        noise = torch.randn(images.shape, generator=generator)
        timesteps = torch.randint(0, 1000, (batch_size,), generator=generator)
        noisy = scheduler.add_noise(images, noise, timesteps)
        loss = torch.nn.functional.mse_loss(unet(noisy, timesteps, encoder_hidden_states=states).sample, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if echo is not None and (len(losses) % 25 == 0 or len(losses) == steps):
            echo(f"step {len(losses)}/{steps} loss {sum(losses[-25:]) / len(losses[-25:]):.4f} "
                 f"({time.monotonic() - started:.0f}s)")
    # Sampling: one image per palette color, the same starting noise for every prompt.
    colors = list(COLORS)
    unet.eval()
    scheduler.set_timesteps(sample_steps)
    with torch.no_grad():
        states = text_states(clip, tokenizer([PROMPT.format(c) for c in colors]))
        sample = torch.randn((1, 3, resolution, resolution), generator=generator).repeat(len(colors), 1, 1, 1)
        for t in scheduler.timesteps:
            predicted = unet(sample, t, encoder_hidden_states=states).sample
            sample = scheduler.step(predicted, t, sample).prev_sample
    pixels = ((sample.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    generated = [Image.fromarray(p) for p in pixels]
    shares = [[color_share(image, color) for color in colors] for image in generated]  # [prompt][color]
    hits = {}
    for i, color in enumerate(colors):
        others = [shares[j][i] for j in range(len(colors)) if j != i]
        hits[color] = shares[i][i] > sum(others) / len(others)
        generated[i].resize((96, 96), Image.NEAREST).save(out / f"sample_{color}.png")
    head, tail = losses[:20], losses[-20:]
    result = {"steps": steps, "batch_size": batch_size, "resolution": resolution, "seed": seed,
              "loss_first_20": sum(head) / max(1, len(head)), "loss_last_20": sum(tail) / max(1, len(tail)),
              "color_hits": sum(hits.values()), "colors": len(colors), "hit_by_color": hits,
              "seconds": round(time.monotonic() - started, 1)}
    (out / "diffusion.json").write_text(json.dumps(result, indent=2))
    return result
