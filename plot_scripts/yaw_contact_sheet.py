"""Contact sheet of yaw-limited render sets: one row per shape, one column per yaw range, over white.

    python plot_scripts/yaw_contact_sheet.py dataset/data/ShapeNetV1RenderingAnglelimit docs/yaw_sets.png \
        [--shapes 03001627/<id> ...] [--count 4] [--cell 112]
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

from dataset.shapenet.layout import YAW_RANGES
from dataset.shapenet.render.yaw_sets import IMAGE_NAME, SET_PREFIX, render_folder
from dispersion_score.launch import OneLineParser, positive_int


def contact_sheet(out: Path, shapes: list[str], yaws: tuple[int, ...] = YAW_RANGES, cell: int = 112) -> Image.Image:
    """RGB image: rows = shapes ("synset/id"), columns = yaw ranges; renders composited over white.

    Raises:
        FileNotFoundError: a render is missing (names it).
    """
    label = 14
    sheet = Image.new("RGB", (cell * len(yaws), label + cell * len(shapes)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for column, yaw in enumerate(yaws):
        draw.text((column * cell + 4, 1), f"r = {yaw}", fill=(0, 0, 0))
        for row, key in enumerate(shapes):
            synset, model_id = key.split("/")
            path = render_folder(out, yaw, synset, model_id) / IMAGE_NAME
            if not path.exists():
                raise FileNotFoundError(f"no render at {path}")
            with Image.open(path) as png:
                tile = Image.new("RGBA", png.size, (255, 255, 255, 255))
                tile.alpha_composite(png.convert("RGBA"))
            sheet.paste(tile.convert("RGB").resize((cell, cell), Image.LANCZOS), (column * cell, label + row * cell))
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="plot_scripts/yaw_contact_sheet.py", description=__doc__.splitlines()[0])
    parser.add_argument("renders", type=Path, help="the yaw sets' root (holding ShapeNetV1RenderingSampleYaw*)")
    parser.add_argument("output", type=Path, help="PNG to write")
    parser.add_argument("--shapes", nargs="*", help="synset/id keys (default: the first --count of the r=0 set)")
    parser.add_argument("--count", type=positive_int, default=4, help="shapes (rows) when --shapes is not given")
    parser.add_argument("--cell", type=positive_int, default=112, help="pixels per tile")
    args = parser.parse_args(argv)
    shapes = (
        args.shapes
        or sorted(f"{p.parent.name}/{p.name}" for p in (args.renders / f"{SET_PREFIX}000" / "image").glob("*/*"))[
            : args.count
        ]
    )
    if not shapes:
        print(f"error: no renders of the r = 0 set under {args.renders}", file=sys.stderr)
        return 1
    try:
        sheet = contact_sheet(args.renders, shapes, cell=args.cell)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.output, optimize=True)
    except (OSError, ValueError) as error:  # a missing or unreadable render, an unwritable or odd output path
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
