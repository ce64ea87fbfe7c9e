"""Writes a photo-like 4000x3000 test picture (gradients, shapes, blur, sensor noise).

Flat synthetic images compress and decode unrealistically fast; noise and soft edges give
JPEG and PNG files of the sizes a phone camera produces.

usage: make_photo.py OUT_DIR [WIDTH HEIGHT]
"""

import random
import sys

from PIL import Image, ImageDraw, ImageFilter


def main() -> None:
    out = sys.argv[1]
    width = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    height = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    rng = random.Random(5)

    # Sky-to-ground colour gradient.
    r = Image.linear_gradient("L").resize((width, height))
    g = r.rotate(90).resize((width, height))
    b = Image.radial_gradient("L").resize((width, height))
    img = Image.merge("RGB", (r, g, b))

    draw = ImageDraw.Draw(img)
    for _ in range(60):
        x, y = rng.randrange(width), rng.randrange(height)
        w, h = rng.randrange(80, 900), rng.randrange(80, 900)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x, y, x + w, y + h), fill=colour)
        else:
            draw.rectangle((x, y, x + w, y + h), fill=colour)
    for _ in range(200):
        pts = [(rng.randrange(width), rng.randrange(height)) for _ in range(2)]
        draw.line(pts, fill=tuple(rng.randrange(256) for _ in range(3)), width=rng.randrange(2, 12))
    img = img.filter(ImageFilter.GaussianBlur(3))

    # Sensor noise: a gaussian noise layer blended in.
    noise = Image.effect_noise((width, height), 24).convert("RGB")
    img = Image.blend(img, noise, 0.12)
    # Fine detail back on top of the blur.
    img = img.filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=2))

    img.save(f"{out}/photo.jpg", quality=90)
    img.save(f"{out}/photo.png", compress_level=6)


if __name__ == "__main__":
    main()
