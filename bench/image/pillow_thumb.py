"""The Pillow baseline: the same job as the pipeline (centre square, Lanczos to 640, JPEG q85).

usage: pillow_thumb.py IN OUT
"""

import sys

from PIL import Image

TARGET = 640


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    img = Image.open(src)
    # JPEG DCT scaling, as libvips and the pipeline do.
    img.draft("RGB", (TARGET, TARGET))
    img = img.convert("RGB")
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side > TARGET:
        # reducing_gap: a box reduce first, then Lanczos for the rest (Pillow's fast path).
        img = img.resize((TARGET, TARGET), Image.LANCZOS, reducing_gap=2.0)
    img.save(dst, quality=85)


if __name__ == "__main__":
    main()
