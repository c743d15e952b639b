"""Known-answer tests: tiny images, explicit keys, outputs worked out by hand from ciphers.md.

Test images use the value ``100 * channel + 10 * row + col`` (or listed pixels) so that every
expected array can be read off the spec's steps. The working is in each test's comments.
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch

import ppattack
from ppattack.cipher import log2_factorial
from ppattack.errors import KeyFileError, PPAttackError, ParameterError
from ppattack.key_parsing import key_from_json
from ppattack.keys import Key


def coded_image(h: int, w: int) -> torch.Tensor:
    """(1, 3, h, w) uint8 with value 100 * c + 10 * r + col."""
    c, r, col = np.meshgrid(np.arange(3), np.arange(h), np.arange(w), indexing="ij")
    return torch.from_numpy((100 * c + 10 * r + col).astype(np.uint8))[None]


def pixels(*rgb: tuple[int, int, int], width: int) -> torch.Tensor:
    """(1, 3, H, width) uint8 from row-major RGB pixels."""
    array = np.array(rgb, dtype=np.uint8).reshape(-1, width, 3).transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))[None]


def make_key(name: str, params: dict, shape: tuple, material: dict) -> Key:
    """A key written by hand, validated exactly like a key file."""
    document = {"format": "ppattack-key/1", "cipher": name, "params": params,
                "shape": list(shape), "material": material}
    return key_from_json(json.loads(json.dumps(document)))


def check(name: str, params: dict, x: torch.Tensor, material: dict, expected: list) -> torch.Tensor:
    cipher = ppattack.create_cipher(name, **params)
    key = make_key(name, params, tuple(x.shape[1:]), material)
    y = cipher.encrypt(x, key)
    assert y.tolist() == [expected]
    assert torch.equal(cipher.decrypt(y, key), x)
    return y


def test_proposed_block_4_on_4x8():
    # Blocks: 0 = columns 0-3, 1 = columns 4-7; block_perm [1, 0] swaps them. In every 2x2
    # sub-block, positions 0..3 = (0,0) (0,1) (1,0) (1,1) and v'(k) = v(pixel_perm[k]) with
    # pixel_perm [2, 0, 3, 1]: [[a, b], [c, d]] -> [[c, a], [d, b]]. Channels move together (+100).
    channel0 = [[14, 4, 16, 6, 10, 0, 12, 2],
                [15, 5, 17, 7, 11, 1, 13, 3],
                [34, 24, 36, 26, 30, 20, 32, 22],
                [35, 25, 37, 27, 31, 21, 33, 23]]
    expected = [[[v + 100 * c for v in row] for row in channel0] for c in range(3)]
    check("proposed", {"block_size": 4}, coded_image(4, 8),
          {"block_perm": [1, 0], "pixel_perm": [2, 0, 3, 1]}, expected)


def test_proposed_block_2_on_4x4_is_block_scrambling():
    # 2x2 blocks, 1x1 sub-blocks (S = 1): output block i = input block block_perm[i] with
    # block_perm [3, 2, 1, 0]: block 0 (top left) gets [[22, 23], [32, 33]], and so on.
    channel0 = [[22, 23, 20, 21], [32, 33, 30, 31], [2, 3, 0, 1], [12, 13, 10, 11]]
    expected = [[[v + 100 * c for v in row] for row in channel0] for c in range(3)]
    check("proposed", {"block_size": 2}, coded_image(4, 4), {"block_perm": [3, 2, 1, 0], "pixel_perm": [0]},
          expected)


def test_le_block_1():
    # d = 3, nibbles u = [lo R, lo G, lo B, hi R, hi G, hi B]; perm [3, 0, 4, 1, 5, 2], flip on 0 and 5.
    # Pixel (0x12, 0x34, 0xAB): u = [2, 4, 11, 1, 3, 10] -> flip [13, 4, 11, 1, 3, 5] -> permute
    # [1, 13, 3, 4, 5, 11] -> flip [14, 13, 3, 4, 5, 4] -> (0x4E, 0x5D, 0x43) = (78, 93, 67).
    # Pixel (0x00, 0xFF, 0x7C): u = [0, 15, 12, 0, 15, 7] -> [15, 15, 12, 0, 15, 8] ->
    # [0, 15, 15, 15, 8, 12] -> [15, 15, 15, 15, 8, 3] -> (0xFF, 0x8F, 0x3F) = (255, 143, 63).
    x = pixels((0x12, 0x34, 0xAB), (0x00, 0xFF, 0x7C), width=2)
    check("le", {"block_size": 1}, x, {"perm": [3, 0, 4, 1, 5, 2], "flip": [1, 0, 0, 0, 0, 1]},
          [[[78, 255]], [[93, 143]], [[67, 63]]])


def test_ele_block_1():
    # Block (pixel) 0 key: perm [3, 4, 5, 0, 1, 2] swaps the nibbles of every component:
    # (0x12, 0x34, 0xAB) -> (0x21, 0x43, 0xBA) = (33, 67, 186).
    # Block 1 key: perm [1, 0, 2, 3, 4, 5], flip [1, 0, 0, 0, 0, 0]: the low nibbles of R and G
    # swap and both are XORed with 15: (0x05, 0xF9, 0x7C) -> (0x06, 0xFA, 0x7C) = (6, 250, 124).
    # block_perm [1, 0]: output pixel 0 = processed pixel 1, output pixel 1 = processed pixel 0.
    x = pixels((0x12, 0x34, 0xAB), (0x05, 0xF9, 0x7C), width=2)
    material = {"block_perm": [1, 0],
                "blocks": [{"perm": [3, 4, 5, 0, 1, 2], "flip": [0] * 6},
                           {"perm": [1, 0, 2, 3, 4, 5], "flip": [1, 0, 0, 0, 0, 0]}]}
    check("ele", {"block_size": 1}, x, material, [[[6, 33]], [[250, 67]], [[124, 186]]])


def test_pe_shared():
    # Pixel (10, 20, 30): NP on R -> (245, 20, 30); colour 3 = (1, 2, 0) -> (20, 30, 245).
    # Pixel (100, 150, 200): NP on G, B -> (100, 105, 55); colour 4 = (2, 0, 1) -> (55, 100, 105).
    x = pixels((10, 20, 30), (100, 150, 200), width=2)
    check("pe", {"key_mode": "shared"}, x,
          {"np": [[[1, 0]], [[0, 1]], [[0, 1]]], "color": [[3, 4]]},
          [[[20, 55]], [[30, 100]], [[245, 105]]])


def test_pe_per_image_derivation_follows_the_documented_construction():
    cipher = ppattack.create_cipher("pe")
    key = make_key("pe", {"key_mode": "per-image"}, (3, 4, 12), {"seed": 4})
    # SHAKE-256 of domain || seed (32 bytes, big-endian) || n (8 bytes); bytes >= 240 skipped.
    stream = hashlib.shake_256(b"ppattack-pe-v1" + (4).to_bytes(32, "big") + (3).to_bytes(8, "big")).digest(100)
    assert 240 in stream[:50] and max(stream[:50]) > 240  # this case exercises the skipping
    codes = [b % 48 for b in stream if b < 240][:48]
    image_key = cipher.image_key(key, 3)
    assert image_key.material["color"].ravel().tolist() == [t % 6 for t in codes]
    for c in range(3):
        assert image_key.material["np"][c].ravel().tolist() == [(t // 6 >> c) & 1 for t in codes]
    x = torch.randint(0, 256, (1, 3, 4, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    shared = ppattack.create_cipher("pe", key_mode="shared")
    y = cipher.encrypt(x, key, indices=[3])
    assert torch.equal(y, shared.encrypt(x, image_key))
    assert torch.equal(cipher.decrypt(y, key, indices=[3]), x)


def test_ycbcr_conversion_is_exact():
    from ppattack.functional import rgb_to_ycbcr, ycbcr_to_rgb

    # Reference: floor(v + 1/2) of the decimal formulas, in exact integer arithmetic (x 10^6).
    grid = torch.tensor([0, 1, 2, 63, 64, 127, 128, 129, 191, 250, 253, 254, 255])
    corners = torch.cartesian_prod(grid, grid, grid)
    rng = torch.randint(0, 256, (20000, 3), generator=torch.Generator().manual_seed(1))
    x = torch.cat([corners, rng]).T.reshape(1, 3, -1, 1).to(torch.uint8)

    def exact(planes, rows):
        out = [torch.div(a * planes[0] + b * planes[1] + c * planes[2] + offset + 500_000, 1_000_000,
                         rounding_mode="floor") for a, b, c, offset in rows]
        return torch.stack(out, 1).clamp(0, 255).to(torch.uint8)

    r, g, b = x.to(torch.int64).unbind(1)
    assert torch.equal(rgb_to_ycbcr(x), exact((r, g, b), [(299_000, 587_000, 114_000, 0),
                                                         (-168_736, -331_264, 500_000, 128_000_000),
                                                         (500_000, -418_688, -81_312, 128_000_000)]))
    luma, cb, cr = r, g - 128, b - 128  # reuse x as a YCbCr image
    assert torch.equal(ycbcr_to_rgb(x), exact((luma, cb, cr), [(1_000_000, 0, 1_402_000, 0),
                                                              (1_000_000, -344_136, -714_136, 0),
                                                              (1_000_000, 1_772_000, 0, 0)]))
    assert (ycbcr_to_rgb(rgb_to_ycbcr(x)).int() - x.int()).abs().max() <= 1


def test_etc_block_2():
    # Blocks 0 (columns 0-1) and 1 (columns 2-3); keys indexed by output block.
    # Output block 0 = input block 1 [[2, 3], [12, 13]] rotated 90 degrees counter-clockwise
    # (transform 1) -> [[3, 13], [2, 12]]; no NP; colour 0 (identity).
    # Output block 1 = input block 0 [[0, 1], [10, 11]] flipped left-right (transform 4) ->
    # [[1, 0], [11, 10]]; NP -> channel c: [[254, 255], [244, 245]] - 100 c; colour 5 = (2, 1, 0)
    # reverses the channels.
    expected = [[[3, 13, 54, 55], [2, 12, 44, 45]],
                [[103, 113, 154, 155], [102, 112, 144, 145]],
                [[203, 213, 254, 255], [202, 212, 244, 245]]]
    check("etc", {"block_size": 2}, coded_image(2, 4),
          {"block_perm": [1, 0], "transform": [1, 4], "np": [0, 1], "color": [0, 5]}, expected)


def test_etc_gray_block_2():
    # Pixels: grey 10, 20, 30 (Y = v, Cb = Cr = 128) and red (255, 0, 0): Y = 76.245 -> 76,
    # Cb = 128 - 43.02768 -> 85, Cr = 255.5 -> 256 -> clipped 255.
    # Grey image (1, 2, 6): [[10, 20, 128, 128, 128, 128], [30, 76, 128, 85, 128, 255]];
    # blocks 0 = Y, 1 = Cb, 2 = Cr.
    # Output block 0 = Cr [[128, 128], [128, 255]], NP -> [[127, 127], [127, 0]].
    # Output block 1 = Y [[10, 20], [30, 76]] rotated counter-clockwise -> [[20, 76], [10, 30]].
    # Output block 2 = Cb [[128, 128], [128, 85]] rotated (transform 5) -> [[128, 85], [128, 128]],
    # then flipped left-right -> [[85, 128], [128, 128]].
    x = pixels((10, 10, 10), (20, 20, 20), (30, 30, 30), (255, 0, 0), width=2)
    cipher = ppattack.create_cipher("etc-gray", block_size=2)
    key = make_key("etc-gray", {"block_size": 2}, (3, 2, 2),
                   {"block_perm": [2, 0, 1], "transform": [0, 1, 5], "np": [1, 0, 0]})
    y = cipher.encrypt(x, key)
    assert y.tolist() == [[[[127, 127, 20, 76, 85, 128], [127, 0, 10, 30, 128, 128]]]]
    # Decrypt: grey pixels come back exactly; red: R = 76 + floor(1.402 * 127 + 0.5) = 254,
    # G = 76 + floor(0.344136 * 43 - 0.714136 * 127 + 0.5) = 0, B = 76 + floor(-1.772 * 43 + 0.5) = 0.
    assert cipher.decrypt(y, key).tolist() == pixels((10, 10, 10), (20, 20, 20), (30, 30, 30), (254, 0, 0),
                                                     width=2).tolist()


def test_block_shuffle_block_2_channels_fastest():
    # Block vector (row, col, channel): [0, 100, 200, 1, 101, 201, 10, 110, 210, 11, 111, 211] for
    # block 0; perm = rotate left by one: x'[k] = x[k + 1]. Block 1 (columns 2-3) likewise.
    expected = [[[100, 101, 102, 103], [110, 111, 112, 113]],
                [[200, 201, 202, 203], [210, 211, 212, 213]],
                [[1, 10, 3, 12], [11, 0, 13, 2]]]
    check("block-shuffle", {"block_size": 2}, coded_image(2, 4), {"perm": list(range(1, 12)) + [0]}, expected)


def test_block_np_block_2():
    # mask over (row, col, channel): (0,0) R; (0,1) G; (1,0) B; (1,1) all three.
    expected = [[[255, 1], [10, 244]], [[100, 154], [110, 144]], [[200, 201], [45, 44]]]
    check("block-np", {"block_size": 2}, coded_image(2, 2),
          {"mask": [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]}, expected)


def test_block_ffx_uses_ff3_1_on_masked_values():
    ff3 = pytest.importorskip("ff3")  # the maintained FF3-1 package is the reference
    fpe_key, tweak = list(range(16)), [7, 6, 5, 4, 3, 2, 1]
    reference = ff3.FF3Cipher(bytes(fpe_key).hex(), bytes(tweak).hex(), radix=10)
    x = pixels((10, 20, 30), width=1)
    cipher = ppattack.create_cipher("block-ffx", block_size=1)
    key = make_key("block-ffx", {"block_size": 1}, (3, 1, 1), {"mask": [1, 0, 1], "fpe_key": fpe_key, "tweak": tweak})
    y = cipher.encrypt(x, key)
    assert y.dtype == torch.int32
    assert y.flatten().tolist() == [int(reference.encrypt("000010")), 20, int(reference.encrypt("000030"))]
    assert torch.equal(cipher.decrypt(y, key), x)
    with pytest.raises(KeyFileError):
        cipher.decrypt(y + 1, key)  # values this key cannot produce


def test_batched_ff3_1_agrees_with_the_ff3_package():
    ff3 = pytest.importorskip("ff3")
    from ppattack_ciphers.block_ffx import ff3_1_encrypt

    rng = np.random.default_rng(0)
    for _ in range(3):
        fpe_key, tweak = rng.integers(0, 256, 16), rng.integers(0, 256, 7)
        reference = ff3.FF3Cipher(bytes(fpe_key.astype(np.uint8)).hex(), bytes(tweak.astype(np.uint8)).hex(), radix=10)
        values = np.concatenate([np.arange(256), rng.integers(0, 10**6, 50), [999_999]])
        expected = [int(reference.encrypt(f"{v:06d}")) for v in values]
        assert ff3_1_encrypt(fpe_key, tweak, values).tolist() == expected


def test_block_ffx_without_pycryptodome_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "Crypto.Cipher", None)  # makes the AES import fail
    cipher = ppattack.create_cipher("block-ffx", block_size=1)
    key = cipher.generate_key((3, 2, 2), seed=0)
    with pytest.raises(PPAttackError, match=r"pip install 'ppattack\[ffx\]'"):
        cipher.encrypt(torch.zeros((1, 3, 2, 2), dtype=torch.uint8), key)


@pytest.mark.parametrize("name, params, shape, bits, separable", [
    ("proposed", {"block_size": 16}, (3, 224, 224), log2_factorial(196) + log2_factorial(64),
     max(log2_factorial(196), log2_factorial(64))),
    ("le", {"block_size": 4}, (3, 32, 32), log2_factorial(96) + 96, log2_factorial(96) + 96),
    ("ele", {"block_size": 4}, (3, 32, 32), log2_factorial(64) + 64 * (log2_factorial(96) + 96),
     log2_factorial(96) + 96),
    ("pe", {}, (3, 32, 32), 1024 * (3 + math.log2(6)), math.log2(48)),
    ("etc", {"block_size": 4}, (3, 32, 32), log2_factorial(64) + 64 * math.log2(96), log2_factorial(64)),
    ("etc-gray", {"block_size": 4}, (3, 32, 32), log2_factorial(192) + 192 * 4, log2_factorial(192)),
    ("block-shuffle", {"block_size": 4}, (3, 32, 32), log2_factorial(48), log2_factorial(48)),
    ("block-np", {"block_size": 4}, (3, 32, 32), 48.0, 1.0),
    ("block-ffx", {"block_size": 4}, (3, 32, 32), 48.0 + 128 + 56, 128.0 + 56),
])
def test_key_space(name, params, shape, bits, separable):
    cipher = ppattack.create_cipher(name, **params)
    assert cipher.key_space_bits(shape) == pytest.approx(bits)
    assert cipher.separable_bits(shape) == pytest.approx(separable)


def test_seed_key_space_is_2_to_the_1510_84():
    assert round(ppattack.create_cipher("proposed", block_size=16).key_space_bits((3, 224, 224)), 2) == 1510.84


def test_info_card_for_proposed_reports_1510_84(cli_runner):
    from ppattack.cli import cli

    args = ["info", "--cipher", "proposed", "--param", "block_size=16", "--shape", "3,224,224"]
    result = cli_runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "1510.84" in result.output
    card = json.loads(cli_runner.invoke(cli, args + ["--json"]).output)
    assert card["key_space_bits"] == 1510.84 and card["key_reuse"] == "shared"


@pytest.mark.parametrize("name", sorted(set(ppattack.list_ciphers()) - {"plain", "proposed"}))
def test_info_card_for_every_new_cipher(cli_runner, name):
    from ppattack.cli import cli

    cipher = ppattack.create_cipher(name)
    extra = ["--param", "block_size=4"] if cipher.block_size else []
    result = cli_runner.invoke(cli, ["info", "--cipher", name, *extra, "--shape", "3,32,32", "--json"])
    assert result.exit_code == 0, result.output
    card = json.loads(result.output)
    assert card["paper"] == cipher.paper and card["paper"]
    assert card["key_reuse"] == ("per-image" if name == "pe" else "shared")
    assert card["encrypted_shape"] == ([1, 32, 96] if name == "etc-gray" else [3, 32, 32])
    assert card["invertible"] is True


def test_metadata_the_attacks_rely_on():
    expected_units = {"pe": ("pixel", 48), "etc": ("block", 96), "etc-gray": ("block", 16)}
    for name in ppattack.list_ciphers():
        cipher = ppattack.create_cipher(name)
        units = cipher.unit_transforms((3, 32, 32))
        assert (None if units is None else (units.unit, units.count)) == expected_units.get(name)
        assert cipher.component_permutation == (name in {"plain", "proposed", "block-shuffle"})
        assert cipher.key_reuse == ("per-image" if name == "pe" else "shared")
    assert ppattack.create_cipher("pe", key_mode="shared").key_reuse == "shared"
    assert ppattack.create_cipher("etc", block_size=8).block_size == 8
    assert ppattack.create_cipher("etc").unit_transforms((3, 32, 32)).unit_size == 16
    assert ppattack.create_cipher("etc-gray").block_size == 8
    assert ppattack.create_cipher("pe").block_size is None


def test_bad_parameters_are_clear_errors():
    with pytest.raises(ParameterError, match="key_mode"):
        ppattack.create_cipher("pe", key_mode="sometimes")
    with pytest.raises(ParameterError, match="block_size"):
        ppattack.create_cipher("etc", block_size=0)
