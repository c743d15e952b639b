"""keyrec and its building blocks: seriation, compatibility, placement, key scores."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ppattack
from ppattack.compat import dihedral_dissimilarity, dissimilarity
from ppattack.keyscore import score_recovery
from ppattack.pieces import INVERSE, OFFSETS, PRODUCT, ColourGroup, assemble, split, square_symmetries, turn
from ppattack.placement import place
from ppattack.seriation import grid_template, match_positions
from ppattack.threat import ThreatView
from smooth import smooth_images


def test_dihedral_tables_match_torch():
    grid = torch.arange(25).view(5, 5)
    for a in range(8):
        assert torch.equal(turn(turn(grid, a), INVERSE[a]), grid)
        for b in range(8):
            assert torch.equal(turn(turn(grid, b), a), turn(grid, PRODUCT[a, b]))
    # OFFSETS[t] moves the offset between two pixels as turn(t) moves the pixels
    where = {int(v): divmod(i, 5) for i, v in enumerate(turn(grid, 5).flatten())}
    delta_old = np.array(divmod(7, 5)) - np.array(divmod(0, 5))
    assert (OFFSETS[5] @ delta_old == np.array(where[7]) - np.array(where[0])).all()


def test_colour_group_composes():
    group = ColourGroup(3)
    x = torch.randint(0, 256, (2, 3, 4, 4))
    assert group.size == 12
    for a in range(12):
        for b in range(12):
            assert torch.equal(group.apply(group.apply(x, b), a), group.apply(x, group.product[a, b]))


@pytest.mark.parametrize("side", [3, 8])
def test_seriation_recovers_a_grid_up_to_its_symmetries(side):
    template = grid_template(side, side)
    perm = np.random.default_rng(side).permutation(side * side)
    found = match_positions(template, template[np.ix_(perm, perm)])
    assert any((s[found] == perm).all() for s in square_symmetries(side))


def test_compatibility_and_placement_solve_a_smooth_puzzle():
    image = smooth_images(1, 24, seed=1)
    order = torch.from_numpy(np.random.default_rng(0).permutation(9))
    pieces = split(image, 8)[0][order]
    table = dissimilarity(pieces).numpy()
    assert table.shape == (2, 9, 9) and np.isinf(np.diagonal(table, axis1=1, axis2=2)).all()
    solved = place(table, 3, 3)
    assert (solved.cells == order.numpy()).all() and solved.largest_cluster == 9


def test_dihedral_table_equals_the_brute_force_table():
    pieces = torch.rand(3, 3, 4, 4) * 255
    group = ColourGroup(3)
    table, relative = dihedral_dissimilarity(pieces, colour=group)
    turned = torch.stack([turn(pieces.double(), t) for t in range(8)], 1).flatten(0, 1)
    brute = torch.stack([dissimilarity(turned, others=group.apply(turned, e)) for e in range(12)]).min(0)
    other = (np.arange(24)[:, None] // 8) != (np.arange(24)[None, :] // 8)
    assert np.allclose(table[:, other], brute.values.numpy()[:, other])
    assert (relative[:, other] == brute.indices.numpy()[:, other]).all()


def test_keyscore_scores_parts_and_placements():
    cipher = ppattack.create_cipher("proposed", block_size=4)
    key = cipher.generate_key((3, 16, 16), seed=0)
    truth = {k: np.asarray(v) for k, v in key.material.items()}
    assert score_recovery(cipher, key, truth)["complete"] == 1.0
    wrong = dict(truth, block_perm=truth["block_perm"][::-1].copy())
    scores = score_recovery(cipher, key, wrong)
    assert scores["pixel_perm"] == 1.0 and scores["block_perm"] < 1 and scores["complete"] == 0.0
    assert 0 <= scores["neighbour"] <= 1 and scores["direct"] == scores["block_perm"]
    assert score_recovery(cipher, key, [truth, wrong])["block_perm"] == pytest.approx(
        (1 + scores["block_perm"]) / 2)


def test_keyscore_neighbour_is_blind_to_a_global_turn():
    """etc solved up to a turn and inversion of the whole picture: neighbours all right."""
    from ppattack.component_map import from_oracle, key_material

    cipher = ppattack.create_cipher("etc", block_size=4)
    shape = (3, 16, 16)
    key = cipher.generate_key(shape, seed=0)
    r, c = np.divmod(np.arange(16), 4)
    moved = OFFSETS[1] @ (np.stack([r, c]) - 1.5) + 1.5
    dest = (np.rint(moved[0]) * 4 + np.rint(moved[1])).astype(int)
    block_perm = np.empty(16, int)
    block_perm[dest] = np.arange(16)
    turn_all = ppattack.Key("etc", cipher.params, shape, {"block_perm": block_perm, "transform": np.ones(16, int),
                                                          "np": np.ones(16, int), "color": np.zeros(16, int)})
    found = from_oracle(lambda z: cipher.encrypt(cipher.decrypt(z, turn_all), key), shape)
    scores = score_recovery(cipher, key, key_material(cipher, shape, found))
    assert scores["direct"] == 0.0 and scores["neighbour"] == 1.0 and scores["direct_modulo_global"] == 1.0


def keyrec_view(cipher_name: str, count: int, size: int = 32, block: int = 4):
    cipher = ppattack.create_cipher(cipher_name, block_size=block)
    key = cipher.generate_key((3, size, size), seed=5)
    plain = smooth_images(count, size, seed=11, cells=12)  # some texture: a block's 48 entries differ
    public = smooth_images(100, size, seed=12, cells=12)
    view = ThreatView("coa+public", cipher, (3, size, size), cipher.encrypt(plain, key), public)
    return cipher, key, plain, view


@pytest.mark.parametrize("cipher_name", ["proposed", "block-shuffle", "block-np"])
def test_keyrec_recovers_shared_keys_of_smooth_images(cipher_name):
    cipher, key, plain, view = keyrec_view(cipher_name, 40)
    result = ppattack.create_attack("keyrec")(view)
    scores = score_recovery(cipher, key, result.facts.pop("recovered_key"))
    assert scores["complete"] == 1.0, scores
    assert torch.equal(result.images, plain)


def test_keyrec_refuses_unsupported_ciphers_and_threats():
    cipher = ppattack.create_cipher("le", block_size=4)
    key = cipher.generate_key((3, 32, 32), seed=0)
    images = smooth_images(4, 32)
    view = ThreatView("coa+public", cipher, (3, 32, 32), cipher.encrypt(images, key), images)
    with pytest.raises(ppattack.ParameterError, match="not supported"):
        ppattack.create_attack("keyrec")(view)
    with pytest.raises(ppattack.ParameterError, match="coa\\+public"):
        ppattack.create_attack("keyrec", threat="coa")


def test_harness_scores_and_withholds_the_recovered_key():
    from ppattack.harness import RunConfig, run

    document = run(RunConfig(cipher="proposed", attack="keyrec", accuracy=False, limit=48)).document
    assert document["attack"]["key_recovery"]["complete"] == 1.0
    assert "recovered_key" not in document["attack"]["facts"]
    assert document["metrics"]["ssim"]["mean"] == pytest.approx(1.0)


def test_pieces_round_trip():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    assert torch.equal(assemble(split(x, 4), 2, 2), x)
