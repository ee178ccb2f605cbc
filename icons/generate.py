#!/usr/bin/env python3
"""Draws Warmline's icons: a white "W" stroke on a warm rounded square.

Run from anywhere: `python3 icons/generate.py`. It rewrites the PNGs beside this
file. The outputs are committed, so neither the build nor CI runs this script; it
exists so the icon can be changed by editing numbers instead of pixels.

Drawing uses signed distance fields with one pixel of linear anti-aliasing, so
the shapes stay crisp at every size without supersampling. Only the standard
library is used (zlib + struct write the PNG), because Tauri's
`generate_context!` needs an RGBA PNG to exist at compile time.
"""

import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# Warm diagonal gradient: amber at the top left to rose at the bottom right.
TOP_LEFT = (251, 146, 60)
BOTTOM_RIGHT = (225, 29, 72)
# The "W", as one polyline in unit coordinates; round caps and joins come free
# from the union of capsules.
W_POINTS = [(0.20, 0.33), (0.35, 0.70), (0.50, 0.43), (0.65, 0.70), (0.80, 0.33)]


def rounded_square_sdf(x, y, size, radius):
    """Signed distance (pixels) to a rounded square covering the whole canvas."""
    half = size / 2.0
    qx = abs(x - half) - (half - radius)
    qy = abs(y - half) - (half - radius)
    outside = math.hypot(max(qx, 0.0), max(qy, 0.0))
    inside = min(max(qx, qy), 0.0)
    return outside + inside - radius


def segment_distance(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    t = ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)
    t = max(0.0, min(1.0, t))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def coverage(signed_distance):
    """One pixel of linear anti-aliasing across the edge."""
    return max(0.0, min(1.0, 0.5 - signed_distance))


def draw(size, badge=None, grey=False):
    """The icon; `badge` puts a status dot of that colour bottom right (with a
    white ring so it reads on any panel), `grey` desaturates it (paused, down)."""
    radius = size * 0.22
    stroke = max(2.6, size * 0.085)
    points = [(x * size, y * size) for x, y in W_POINTS]
    segments = list(zip(points, points[1:]))
    rows = []
    for j in range(size):
        row = bytearray([0])  # PNG filter type 0 (None) for this scanline
        for i in range(size):
            x, y = i + 0.5, j + 0.5
            alpha = coverage(rounded_square_sdf(x, y, size, radius))
            if alpha == 0.0:
                row += b"\x00\x00\x00\x00"
                continue
            t = (x + y) / (2.0 * size)
            bg = [a + (b - a) * t for a, b in zip(TOP_LEFT, BOTTOM_RIGHT)]
            # A soft top highlight gives the flat square a little depth.
            light = 0.10 * max(0.0, 1.0 - y / (size * 0.55))
            bg = [c + (255 - c) * light for c in bg]
            d = min(segment_distance(x, y, *a, *b) for a, b in segments) - stroke / 2
            ink = coverage(d)
            rgb = [c * (1 - ink) + 255 * ink for c in bg]
            if grey:
                luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
                rgb = [luma * 0.85 + 20] * 3
            if badge is not None:
                dot_r = size * 0.23
                cx = cy = size - dot_r - size * 0.02
                dist = math.hypot(x - cx, y - cy)
                ring = coverage(dist - dot_r)
                fill = coverage(dist - (dot_r - max(1.2, size * 0.05)))
                rgb = [c * (1 - ring) + 255 * ring for c in rgb]
                rgb = [c * (1 - fill) + b * fill for c, b in zip(rgb, badge)]
                alpha = max(alpha, ring)
            row += bytes([round(c) for c in rgb] + [round(alpha * 255)])
        rows.append(bytes(row))
    return b"".join(rows)


def write_png(path, size, raw):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    with open(path, "wb") as f:
        f.write(png)


# Tray icons, one per state the tray shows (see src-tauri/src/tray.rs).
TRAY = [
    ("tray-ok.png", {}),
    ("tray-degraded.png", {"badge": (234, 179, 8)}),
    ("tray-down.png", {"badge": (220, 38, 38), "grey": True}),
    ("tray-paused.png", {"grey": True}),
]


def main():
    # The app icon in the sizes desktops look for (hicolor): Tauri's bundler
    # installs each PNG of `bundle.icon` as /usr/share/icons/hicolor/NxN/apps/.
    sizes = [("icon.png", 256), ("512x512.png", 512), ("128x128.png", 128),
             ("64x64.png", 64), ("48x48.png", 48), ("32x32.png", 32)]
    for name, size in sizes:
        write_png(os.path.join(HERE, name), size, draw(size))
        print(f"wrote icons/{name} ({size}x{size} RGBA)")
    for name, look in TRAY:
        write_png(os.path.join(HERE, name), 64, draw(64, **look))
        print(f"wrote icons/{name} (64x64 RGBA)")


if __name__ == "__main__":
    main()
