"""A small QR code encoder (ISO/IEC 18004): byte mode, error correction M or L, versions 1-10.

Enough for the live page's URL (up to 213 bytes at level M) without a dependency.  `encode()`
gives the module matrix, `svg()` draws it; both are deterministic for the same input.  The mask
is chosen by the standard's four penalty rules, unless one is asked for (tests compare masks).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_VERSION", "QrCode", "QrTooLong", "encode", "svg"]

MAX_VERSION = 10
QUIET_ZONE = 4

# Per version 1-10 and level: (EC codewords per block, ((block count, data codewords per block), …)).
_BLOCKS: dict[str, tuple[tuple[int, tuple[tuple[int, int], ...]], ...]] = {
    "L": (
        (7, ((1, 19),)),
        (10, ((1, 34),)),
        (15, ((1, 55),)),
        (20, ((1, 80),)),
        (26, ((1, 108),)),
        (18, ((2, 68),)),
        (20, ((2, 78),)),
        (24, ((2, 97),)),
        (30, ((2, 116),)),
        (18, ((2, 68), (2, 69))),
    ),
    "M": (
        (10, ((1, 16),)),
        (16, ((1, 28),)),
        (26, ((1, 44),)),
        (18, ((2, 32),)),
        (24, ((2, 43),)),
        (16, ((4, 27),)),
        (18, ((4, 31),)),
        (22, ((2, 38), (2, 39))),
        (22, ((3, 36), (2, 37))),
        (26, ((4, 43), (1, 44))),
    ),
}
_FORMAT_LEVEL_BITS = {"L": 0b01, "M": 0b00}
# Alignment pattern centres per version (rows and columns alike).
_ALIGNMENT = (
    (), (6, 18), (6, 22), (6, 26), (6, 30), (6, 34), (6, 22, 38), (6, 24, 42), (6, 26, 46), (6, 28, 50),
)  # fmt: skip
_REMAINDER_BITS = (0, 7, 7, 7, 7, 7, 0, 0, 0, 0)
_MASKS = (
    lambda r, c: (r + c) % 2 == 0,
    lambda r, c: r % 2 == 0,
    lambda r, c: c % 3 == 0,
    lambda r, c: (r + c) % 3 == 0,
    lambda r, c: (r // 2 + c // 3) % 2 == 0,
    lambda r, c: (r * c) % 2 + (r * c) % 3 == 0,
    lambda r, c: ((r * c) % 2 + (r * c) % 3) % 2 == 0,
    lambda r, c: ((r + c) % 2 + (r * c) % 3) % 2 == 0,
)


class QrTooLong(ValueError):
    """The data does not fit in a version-10 symbol at level L."""


@dataclass(frozen=True)
class QrCode:
    version: int
    level: str
    mask: int
    modules: tuple[tuple[bool, ...], ...]  # modules[row][column], True = dark

    @property
    def size(self) -> int:
        return len(self.modules)


def encode(data: str | bytes, *, level: str | None = None, mask: int | None = None) -> QrCode:
    """The smallest symbol holding `data` in byte mode: level M when it fits in version 10, else L."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    levels = ("M", "L") if level is None else (level,)
    for lvl in levels:
        if lvl not in _BLOCKS:
            raise ValueError(f"level: must be L or M, got {lvl!r}")
        for version in range(1, MAX_VERSION + 1):
            if len(raw) <= _capacity(version, lvl):
                return _build(raw, version, lvl, mask)
    raise QrTooLong(f"data: at most {_capacity(MAX_VERSION, 'L')} bytes fit a QR code here, got {len(raw)}")


def svg(code: QrCode, *, scale: int = 8, title: str | None = None) -> str:
    """The symbol as a standalone SVG: one path of dark squares on white, with a quiet zone."""
    side = code.size + 2 * QUIET_ZONE
    parts = []
    for r, row in enumerate(code.modules):
        c = 0
        while c < code.size:
            if row[c]:
                start = c
                while c < code.size and row[c]:
                    c += 1
                parts.append(f"M{start + QUIET_ZONE} {r + QUIET_ZONE}h{c - start}v1h-{c - start}z")
            else:
                c += 1
    label = f"<title>{_xml_escape(title)}</title>" if title else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" '
        f'width="{side * scale}" height="{side * scale}" shape-rendering="crispEdges" role="img">'
        f'{label}<rect width="{side}" height="{side}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(parts)}"/></svg>'
    )


# -- building -----------------------------------------------------------------------------------


def _capacity(version: int, level: str) -> int:
    """Bytes of data that fit: data codewords minus the mode indicator and character count."""
    count_bits = 8 if version < 10 else 16
    return (_data_codewords(version, level) * 8 - 4 - count_bits) // 8


def _data_codewords(version: int, level: str) -> int:
    _, groups = _BLOCKS[level][version - 1]
    return sum(n * k for n, k in groups)


def _build(raw: bytes, version: int, level: str, mask: int | None) -> QrCode:
    codewords = _interleave(_data_bits(raw, version, level), version, level)
    size = 17 + 4 * version
    grid, reserved = _function_patterns(version)
    _place(grid, reserved, codewords, _REMAINDER_BITS[version - 1])
    if mask is None:
        candidates = [_finish(grid, reserved, version, level, m) for m in range(8)]
        scores = [_penalty(c) for c in candidates]
        mask = scores.index(min(scores))
        modules = candidates[mask]
    else:
        if not 0 <= mask <= 7:
            raise ValueError(f"mask: must be 0-7, got {mask}")
        modules = _finish(grid, reserved, version, level, mask)
    assert len(modules) == size
    return QrCode(version, level, mask, tuple(tuple(row) for row in modules))


def _data_bits(raw: bytes, version: int, level: str) -> list[int]:
    """Mode, count, data, terminator and padding, as data codewords."""
    bits: list[int] = []

    def put(value: int, width: int) -> None:
        bits.extend((value >> i) & 1 for i in range(width - 1, -1, -1))

    capacity_bits = _data_codewords(version, level) * 8
    put(0b0100, 4)
    put(len(raw), 8 if version < 10 else 16)
    for byte in raw:
        put(byte, 8)
    put(0, min(4, capacity_bits - len(bits)))
    put(0, -len(bits) % 8)
    words = [int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)]
    pad = (0xEC, 0x11)
    words.extend(pad[i % 2] for i in range(_data_codewords(version, level) - len(words)))
    return words


def _interleave(data: list[int], version: int, level: str) -> list[int]:
    ec_len, groups = _BLOCKS[level][version - 1]
    blocks: list[list[int]] = []
    at = 0
    for count, length in groups:
        for _ in range(count):
            blocks.append(data[at : at + length])
            at += length
    ecc = [_rs_remainder(block, ec_len) for block in blocks]
    out: list[int] = []
    for i in range(max(len(b) for b in blocks)):
        out.extend(b[i] for b in blocks if i < len(b))
    for i in range(ec_len):
        out.extend(e[i] for e in ecc)
    return out


def _function_patterns(version: int) -> tuple[list[list[bool]], list[list[bool]]]:
    """Finder, separator, timing and alignment patterns, the dark module; format/version areas reserved."""
    size = 17 + 4 * version
    grid = [[False] * size for _ in range(size)]
    reserved = [[False] * size for _ in range(size)]

    def setm(r: int, c: int, dark: bool) -> None:
        grid[r][c] = dark
        reserved[r][c] = True

    for i in range(size):  # timing patterns
        setm(6, i, i % 2 == 0)
        setm(i, 6, i % 2 == 0)
    for top, left in ((0, 0), (0, size - 7), (size - 7, 0)):  # finders with their separators
        for dr in range(-1, 8):
            for dc in range(-1, 8):
                r, c = top + dr, left + dc
                if 0 <= r < size and 0 <= c < size:
                    ring = max(abs(dr - 3), abs(dc - 3))
                    setm(r, c, ring != 2 and ring != 4)
    centres = _ALIGNMENT[version - 1]
    last = len(centres) - 1
    for i, r0 in enumerate(centres):
        for j, c0 in enumerate(centres):
            if (i, j) in ((0, 0), (0, last), (last, 0)):  # those corners hold finders
                continue
            for dr in range(-2, 3):
                for dc in range(-2, 3):
                    setm(r0 + dr, c0 + dc, max(abs(dr), abs(dc)) != 1)
    for i in range(9):  # format areas (filled in by _finish)
        reserved[8][i] = reserved[i][8] = True
    for i in range(8):
        reserved[8][size - 1 - i] = reserved[size - 1 - i][8] = True
    setm(size - 8, 8, True)  # the dark module
    if version >= 7:
        for i in range(6):
            for j in range(3):
                reserved[i][size - 11 + j] = reserved[size - 11 + j][i] = True
    return grid, reserved


def _place(grid: list[list[bool]], reserved: list[list[bool]], codewords: list[int], remainder: int) -> None:
    """The zigzag: two-module columns from the right, alternately upward and downward."""
    size = len(grid)
    bits = [(w >> i) & 1 for w in codewords for i in range(7, -1, -1)] + [0] * remainder
    at = 0
    right = size - 1
    while right >= 1:
        if right == 6:  # skip the vertical timing pattern
            right = 5
        upward = ((right + 1) & 2) == 0
        for step in range(size):
            r = size - 1 - step if upward else step
            for c in (right, right - 1):
                if not reserved[r][c] and at < len(bits):
                    grid[r][c] = bool(bits[at])
                    at += 1
        right -= 2
    assert at == len(bits), (at, len(bits))


def _finish(
    grid: list[list[bool]], reserved: list[list[bool]], version: int, level: str, mask: int
) -> list[list[bool]]:
    """A copy of `grid` with `mask` applied to the data modules and the format/version info drawn."""
    size = len(grid)
    test = _MASKS[mask]
    out = [[grid[r][c] ^ (not reserved[r][c] and test(r, c)) for c in range(size)] for r in range(size)]
    fmt = _format_bits(level, mask)
    bit = [bool((fmt >> i) & 1) for i in range(15)]
    for i in range(6):
        out[i][8] = bit[i]
    out[7][8] = bit[6]
    out[8][8] = bit[7]
    out[8][7] = bit[8]
    for i in range(9, 15):
        out[8][14 - i] = bit[i]
    for i in range(8):
        out[8][size - 1 - i] = bit[i]
    for i in range(8, 15):
        out[size - 15 + i][8] = bit[i]
    out[size - 8][8] = True
    if version >= 7:
        vbits = _version_bits(version)
        for i in range(18):
            dark = bool((vbits >> i) & 1)
            a, b = size - 11 + i % 3, i // 3
            out[b][a] = dark
            out[a][b] = dark
    return out


def _format_bits(level: str, mask: int) -> int:
    data = _FORMAT_LEVEL_BITS[level] << 3 | mask
    rem = data
    for _ in range(10):
        rem = (rem << 1) ^ ((rem >> 9) * 0x537)
    return (data << 10 | rem) ^ 0x5412


def _version_bits(version: int) -> int:
    rem = version
    for _ in range(12):
        rem = (rem << 1) ^ ((rem >> 11) * 0x1F25)
    return version << 12 | rem


# -- mask penalty (the four rules of ISO/IEC 18004 §7.8.3) ---------------------------------------


def _penalty(m: list[list[bool]]) -> int:
    size = len(m)
    score = 0
    lines = [list(row) for row in m] + [[m[r][c] for r in range(size)] for c in range(size)]
    for line in lines:
        run, prev = 0, None
        for dark in line:
            if dark == prev:
                run += 1
            else:
                if run >= 5:
                    score += run - 2
                run, prev = 1, dark
        if run >= 5:
            score += run - 2
        score += 40 * _finder_like(line)
    for r in range(size - 1):
        for c in range(size - 1):
            if m[r][c] == m[r][c + 1] == m[r + 1][c] == m[r + 1][c + 1]:
                score += 3
    dark = sum(sum(row) for row in m)
    score += 10 * (abs(dark * 20 - size * size * 10) // (size * size))
    return score


_FINDER_A = (True, False, True, True, True, False, True, False, False, False, False)
_FINDER_B = _FINDER_A[::-1]


def _finder_like(line: list[bool]) -> int:
    count = 0
    for i in range(len(line) - 10):
        window = tuple(line[i : i + 11])
        if window in (_FINDER_A, _FINDER_B):
            count += 1
    return count


# -- Reed-Solomon over GF(256), primitive polynomial x^8 + x^4 + x^3 + x^2 + 1 --------------------

_EXP = [0] * 512
_LOG = [0] * 256
_x = 1
for _i in range(255):
    _EXP[_i] = _x
    _LOG[_x] = _i
    _x <<= 1
    if _x & 0x100:
        _x ^= 0x11D
for _i in range(255, 512):
    _EXP[_i] = _EXP[_i - 255]
del _x, _i


def _gf_mul(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else _EXP[_LOG[a] + _LOG[b]]


def _generator(degree: int) -> list[int]:
    poly = [1]
    for i in range(degree):
        nxt = [0] * (len(poly) + 1)
        for j, coef in enumerate(poly):
            nxt[j] ^= coef
            nxt[j + 1] ^= _gf_mul(coef, _EXP[i])
        poly = nxt
    return poly


def _rs_remainder(data: list[int], degree: int) -> list[int]:
    gen = _generator(degree)
    rem = [0] * degree
    for byte in data:
        factor = byte ^ rem[0]
        rem = [*rem[1:], 0]
        for j in range(degree):
            rem[j] ^= _gf_mul(gen[j + 1], factor)
    return rem


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
