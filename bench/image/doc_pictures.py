"""Makes the before/after pictures of docs/images.md from a synthetic 3000x4000 portrait.

Writes OUT_DIR/portrait-sample.jpg (the original, shown downscaled), OUT_DIR/gateway-crop.jpg
(the centre 640x640 pixels, which is what the gateway does to a large upload) and
WORK_DIR/portrait.jpg, the full-size original; then run the pipeline on it:
    examples/normalize WORK_DIR/portrait.jpg OUT_DIR/pipeline-output.jpg

usage: doc_pictures.py WORK_DIR OUT_DIR
"""

import sys

from PIL import Image, ImageDraw, ImageFilter

W, H = 3000, 4000


def portrait() -> Image.Image:
    sky = Image.linear_gradient("L").resize((W, H))
    img = Image.merge("RGB", (sky.point(lambda v: 90 + v // 3), sky.point(lambda v: 140 + v // 4),
                              Image.new("L", (W, H), 200)))
    d = ImageDraw.Draw(img)
    # shoulders and shirt
    d.ellipse((400, 2500, 2600, 4600), fill=(40, 70, 140))
    d.rectangle((1250, 2200, 1750, 2700), fill=(225, 180, 150))  # neck
    # head
    d.ellipse((950, 900, 2050, 2400), fill=(232, 190, 160))
    d.ellipse((900, 750, 2100, 1500), fill=(70, 45, 30))  # hair
    for ex in (1230, 1770):  # eyes
        d.ellipse((ex - 90, 1500, ex + 90, 1600), fill=(255, 255, 255))
        d.ellipse((ex - 40, 1510, ex + 40, 1590), fill=(60, 40, 20))
    d.polygon([(1500, 1620), (1430, 1900), (1570, 1900)], fill=(210, 160, 130))  # nose
    d.chord((1300, 1900, 1700, 2150), 0, 180, fill=(170, 60, 60))  # smile
    # shirt buttons so the gateway's crop is recognisably "the chest"
    for by in range(2850, 4000, 260):
        d.ellipse((1470, by, 1530, by + 60), fill=(230, 230, 230))
    img = img.filter(ImageFilter.GaussianBlur(4))
    noise = Image.effect_noise((W, H), 20).convert("RGB")
    img = Image.blend(img, noise, 0.06)
    return img


def main() -> None:
    work, out = sys.argv[1], sys.argv[2]
    img = portrait()
    img.save(f"{work}/portrait.jpg", quality=90)
    img.resize((480, 640), Image.LANCZOS).save(f"{out}/portrait-sample.jpg", quality=85)
    left, top = (W - 640) // 2, (H - 640) // 2
    img.crop((left, top, left + 640, top + 640)).save(f"{out}/gateway-crop.jpg", quality=80)


if __name__ == "__main__":
    main()
