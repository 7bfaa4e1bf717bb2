"""AtlasNet (Groueix et al., CVPR 2018) as docs/models.md specifies it: ResNet-18 encoder, one MLP per primitive."""

from __future__ import annotations

import torch
from torch import nn

from models.base import PointCloudNet
from models.templates import TEMPLATES, SphereTemplate, SquareTemplate


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv1d(in_channels, out_channels, 1), nn.BatchNorm1d(out_channels), nn.ReLU(inplace=True)]


class PrimitiveDecoder(nn.Module):
    """One primitive's point-wise MLP: template coordinates + latent code → 3-D points.

    Layers (docs/models.md): Conv1d(dim → bottleneck) plus the latent code added as a per-item bias → BN → ReLU →
    Conv1d(bottleneck → hidden) → BN → ReLU → hidden_layers × [Conv1d(hidden → hidden) → BN → ReLU] →
    Conv1d(hidden → 3). Kernel-1 Conv1d on (B, C, P) is a per-point Linear layer; BatchNorm statistics are
    taken over the batch and all points (measured on CPU: as fast as Linear on (B·P, C), and BatchNorm1d
    needs no reshaping in this layout).
    """

    def __init__(self, dim: int, bottleneck: int, hidden: int, hidden_layers: int) -> None:
        super().__init__()
        self.first = nn.Conv1d(dim, bottleneck, 1)
        self.first_norm = nn.BatchNorm1d(bottleneck)
        layers = _conv_bn_relu(bottleneck, hidden)
        for _ in range(hidden_layers):
            layers += _conv_bn_relu(hidden, hidden)
        self.body = nn.Sequential(*layers)
        self.last = nn.Conv1d(hidden, 3, 1)

    def forward(self, template: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """template: (B, dim, P) or (dim, P) shared by the batch; latent: (B, bottleneck) → (B, 3, P)."""
        x = self.first(template if template.ndim == 3 else template.unsqueeze(0))
        x = torch.relu(self.first_norm(x + latent.unsqueeze(2)))
        return self.last(self.body(x))


class AtlasNet(PointCloudNet):
    """AtlasNet with ``primitives`` SPHERE or SQUARE patches.

    Args:
        template: "sphere" (dim 3) or "square" (dim 2).
        primitives: number of patches, each with its own decoder MLP.
        num_points: points in a training prediction, split evenly over the primitives
            (``primitives · (num_points // primitives)`` in total).
        bottleneck: latent size (encoder output and the first decoder layer's width).
        hidden: width of the other decoder layers (512 in docs/models.md).
        hidden_layers: number of hidden → hidden layers (2 in docs/models.md).
        sphere_level: icosphere subdivision level of the regular sphere template; ``predict`` gives
            ``primitives · (10·4^level + 2)`` points (2562 for one sphere at level 4).
        grid_size: side of the regular grid of each square patch; ``predict`` gives
            ``primitives · grid_size²`` points. Default: the side closest to sqrt(num_points / primitives).
        sphere_construction: how the regular sphere template is built, "trimesh" (default) or "pymesh"
            (the original code's icosphere; see ``models.templates.SphereTemplate``).
    """

    def __init__(
        self,
        *,
        template: str = "sphere",
        primitives: int = 1,
        num_points: int = 2500,
        bottleneck: int = 1024,
        hidden: int = 512,
        hidden_layers: int = 2,
        sphere_level: int = 4,
        grid_size: int | None = None,
        sphere_construction: str = "trimesh",
    ) -> None:
        super().__init__(bottleneck)
        if template not in TEMPLATES:
            raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}")
        if primitives < 1:
            raise ValueError(f"primitives must be >= 1, got {primitives}")
        if num_points < primitives:
            raise ValueError(f"num_points ({num_points}) must be >= primitives ({primitives})")
        self.template_name = template
        self.primitives = primitives
        self.points_per_primitive = num_points // primitives
        if template == "sphere":
            self.template: SphereTemplate | SquareTemplate = SphereTemplate(
                sphere_level, construction=sphere_construction
            )
        else:
            side = grid_size if grid_size is not None else SquareTemplate.grid_size_for(num_points / primitives)
            self.template = SquareTemplate(side)
        self.decoders = nn.ModuleList(
            PrimitiveDecoder(self.template.dim, bottleneck, hidden, hidden_layers) for _ in range(primitives)
        )

    def decode(self, latent: torch.Tensor, *, regular: bool) -> torch.Tensor:
        batch = latent.shape[0]
        patches = []
        for decoder in self.decoders:
            if regular:
                template = self.template.regular_points(device=latent.device)
            else:
                template = self.template.random_points(batch, self.points_per_primitive, device=latent.device)
            patches.append(decoder(template, latent))
        return torch.cat(patches, dim=2).transpose(1, 2)

    def num_points(self, *, regular: bool) -> int:
        if not regular:
            return self.primitives * self.points_per_primitive
        return self.primitives * self.template.regular_points().shape[1]
