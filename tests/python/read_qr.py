"""Reads the QR code of an SVG the gateway drew, as a phone's camera would,
and answers what an authenticator app computes from it.

    read_qr.py FILE.svg          -> the QR code's text (an otpauth:// URI)
    read_qr.py FILE.svg OFFSET   -> also the code the app shows OFFSET
                                    seconds from now

The SVG is painted module by module (its path is rectangles: M x y h w v h
H x V y) into an image, which zxing-cpp decodes; pyotp, an implementation
of RFC 6238 nobody here wrote, computes the code from the URI.
"""

import re
import sys
import time

import pyotp
import zxingcpp
from PIL import Image, ImageDraw

SCALE = 4


def decode(svg: str) -> str:
    width, height = (int(float(v)) for v in re.search(r'viewBox="0 0 (\S+) (\S+)"', svg).groups())
    image = Image.new("L", (width * SCALE, height * SCALE), 255)
    draw = ImageDraw.Draw(image)
    path = re.search(r'<path[^>]* d="([^"]+)"', svg).group(1)
    for x, y, w, h in re.findall(r"M(\d+) (\d+)h(\d+)v(\d+)H\d+V\d+", path):
        x, y, w, h = int(x), int(y), int(w), int(h)
        draw.rectangle([x * SCALE, y * SCALE, (x + w) * SCALE - 1, (y + h) * SCALE - 1], fill=0)
    found = zxingcpp.read_barcodes(image)
    if not found:
        sys.exit("no QR code found in the SVG")
    return found[0].text


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as file:
        text = decode(file.read())
    print(text)
    if len(sys.argv) > 2:
        totp = pyotp.parse_uri(text)
        print(totp.at(time.time() + int(sys.argv[2])))


if __name__ == "__main__":
    main()
