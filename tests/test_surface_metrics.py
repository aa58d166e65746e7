"""Surface-distance metrics: known answers on hand-made shapes, a brute-force reference, medpy 0.5 agreement,
empty masks, cropping, and the max-of-directed HD95 option."""

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from labkit.errors import LabkitInputError
from labkit.evaluation import asd, assd, hd, hd95, surface_distances, surface_metrics
from labkit.evaluation.surface import SURFACE_METRICS, crop_to_union

from medpy.metric import binary  # noqa: E402  (a test extra: a missing medpy must fail, not skip)
FUNCTIONS = {"hd": hd, "hd95": hd95, "asd": asd, "assd": assd}
MEDPY = {"hd": binary.hd, "hd95": binary.hd95, "asd": binary.asd, "assd": binary.assd}


# --- independent reference: explicit face-neighbour surfaces and all-pairs distances -------------------------------

def brute_surface_points(mask, spacing):
    """Physical coordinates of the voxels of `mask` with a face neighbour outside the mask (or outside the array)."""
    padded = np.pad(mask, 1)
    inside = padded[tuple(slice(1, -1) for _ in mask.shape)]
    exposed = np.zeros_like(mask)
    for axis in range(mask.ndim):
        for step in (-1, 1):
            neighbour = np.roll(padded, step, axis=axis)[tuple(slice(1, -1) for _ in mask.shape)]
            exposed |= inside & ~neighbour
    return np.argwhere(exposed) * np.asarray(spacing, dtype=float)


def brute_metrics(pred, ref, spacing):
    p, r = brute_surface_points(pred, spacing), brute_surface_points(ref, spacing)
    pairwise = cdist(p, r)
    d_pr, d_rp = pairwise.min(axis=1), pairwise.min(axis=0)
    return {"hd": max(d_pr.max(), d_rp.max()), "hd95": np.percentile(np.hstack((d_pr, d_rp)), 95),
            "asd": d_pr.mean(), "assd": np.concatenate([d_pr, d_rp]).mean(),
            "hd95_max": max(np.percentile(d_pr, 95), np.percentile(d_rp, 95))}


# --- hand-made shapes -----------------------------------------------------------------------------------------------

def two_cubes(side=4, gap_start=10, shape=(16, 16, 20)):
    """Cube A occupies z 2..5, cube B the same x/y at z gap_start..gap_start+side-1."""
    a, b = np.zeros(shape, bool), np.zeros(shape, bool)
    a[2:2 + side, 2:2 + side, 2:2 + side] = True
    b[2:2 + side, 2:2 + side, gap_start:gap_start + side] = True
    return a, b


def sphere(shape, centre, radius):
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


# Two 4-voxel cubes 8 voxels apart along z: each surface voxel at level k (0..3) of A is (8 − k)·sz from B's facing
# side; the levels hold 16, 12, 12, 16 surface voxels, so ASD = (16·8 + 12·7 + 12·6 + 16·5) / 56 · sz = 6.5·sz,
# HD = 8·sz and, with the 32 largest of the 112 pooled distances equal to 8·sz, HD95 = 8·sz. x/y spacing plays no
# part.
@pytest.mark.parametrize("spacing, scale", [(None, 1.0), ((1.0, 1.0, 1.0), 1.0), ((0.5, 0.7, 2.0), 2.0),
                                            ((3.0, 3.0, 0.25), 0.25), (1.5, 1.5)])
def test_two_cubes_known_distances(spacing, scale):
    a, b = two_cubes()
    values = surface_metrics(a, b, spacing)
    assert values == pytest.approx({"hd": 8 * scale, "hd95": 8 * scale, "asd": 6.5 * scale, "assd": 6.5 * scale})
    assert asd(b, a, spacing) == pytest.approx(6.5 * scale)  # the mirror image gives the same directed mean


def test_touching_cubes_share_a_face_at_distance_one():
    a, b = two_cubes(gap_start=6)  # B starts right where A ends
    assert hd(a, b) == pytest.approx(4.0)  # A's bottom face to B's bottom face
    assert asd(a, b) == pytest.approx((16 * 4 + 12 * 3 + 12 * 2 + 16 * 1) / 56)


def test_identical_masks_have_zero_distances():
    mask = sphere((20, 20, 20), (10, 10, 10), 6)
    assert surface_metrics(mask, mask, (0.6, 0.6, 1.2)) == {name: 0.0 for name in SURFACE_METRICS}


@pytest.mark.parametrize("shift, spacing", [(3, (1.0, 1.0, 1.0)), (4, (0.8, 1.0, 1.0)), (2, (2.0, 0.5, 0.5))])
def test_sphere_against_shifted_sphere(shift, spacing):
    a = sphere((32, 28, 28), (12, 14, 14), 7)
    b = np.roll(a, shift, axis=0)
    values = surface_metrics(a, b, spacing)
    # the poles along the shift are exactly shift·sx from the other surface; no voxel is farther
    assert values["hd"] == pytest.approx(shift * spacing[0])
    assert 0 < values["asd"] < values["hd95"] <= values["hd"]
    # a digital sphere is point-symmetric, so both directions see the same distances
    assert values["asd"] == pytest.approx(asd(b, a, spacing)) == pytest.approx(values["assd"])
    expected = brute_metrics(a, b, spacing)
    assert values == pytest.approx({k: expected[k] for k in SURFACE_METRICS}, rel=1e-12)


def test_anisotropic_spacing_scales_each_axis():
    a = np.zeros((12, 12, 12), bool)
    a[2:5, 2:5, 2:5] = True
    b = np.roll(a, 5, axis=0)  # shift along x only
    c = np.roll(a, 5, axis=2)  # shift along z only
    spacing = (0.5, 1.0, 3.0)
    assert hd(a, b, spacing) == pytest.approx(5 * 0.5)
    assert hd(a, c, spacing) == pytest.approx(5 * 3.0)
    assert hd(a, b) == hd(a, c) == pytest.approx(5.0)


# --- agreement with an independent brute force and with medpy 0.5 ----------------------------------------------------

def random_masks(seed, shape, sigma=1.5, level=0.2):
    rng = np.random.default_rng(seed)
    field = lambda: ndimage.gaussian_filter(rng.normal(size=shape), sigma)  # noqa: E731
    return field() > level, field() > level


SHAPED = {
    "cube vs sphere": (np.pad(np.ones((6, 6, 6), bool), 5), sphere((16, 16, 16), (8, 8, 8), 4)),
    "touching the border": (np.ones((6, 7, 5), bool), np.pad(np.ones((4, 5, 3), bool), 1)),
    "single voxel vs ring": (np.pad(np.ones((1, 1), bool), 4), np.pad(np.pad(np.zeros((3, 3), bool), 1,
                                                                              constant_values=True), 2)),
    "hollow shell": (sphere((18, 18, 18), (9, 9, 9), 7) & ~sphere((18, 18, 18), (9, 9, 9), 4),
                     sphere((18, 18, 18), (8, 9, 10), 6)),
    "1-D segments": (np.array([0, 1, 1, 1, 0, 0, 0, 1, 0, 0], bool), np.array([0, 0, 1, 1, 1, 1, 0, 0, 0, 1], bool)),
}


@pytest.mark.parametrize("seed, shape, spacing", [
    (0, (14, 17, 11), (1.0, 1.0, 1.0)),
    (1, (20, 12, 9), (0.625, 0.625, 1.25)),
    (2, (9, 23, 15), (2.3, 0.4, 1.1)),
    (3, (32, 28), (0.7, 1.9)),
    (4, (18, 18, 18), None),
])
def test_random_masks_match_medpy_and_brute_force(seed, shape, spacing):
    pred, ref = random_masks(seed, shape)
    assert pred.any() and ref.any()
    values = surface_metrics(pred, ref, spacing)
    for name in SURFACE_METRICS:
        assert values[name] == pytest.approx(MEDPY[name](pred, ref, voxelspacing=spacing), rel=1e-12, abs=1e-12)
        assert FUNCTIONS[name](pred, ref, spacing) == values[name]
    brute = brute_metrics(pred, ref, spacing or (1.0,) * len(shape))
    assert values == pytest.approx({k: brute[k] for k in SURFACE_METRICS}, rel=1e-12)


@pytest.mark.parametrize("name", sorted(SHAPED))
@pytest.mark.parametrize("spacing", [None, "anisotropic"])
def test_shaped_masks_match_medpy(name, spacing):
    pred, ref = SHAPED[name]
    spacing = None if spacing is None else tuple(np.linspace(0.5, 1.7, pred.ndim))
    for metric in SURFACE_METRICS:
        ours = FUNCTIONS[metric](pred, ref, spacing)
        theirs = MEDPY[metric](pred, ref, voxelspacing=spacing)
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-12), metric
        assert FUNCTIONS[metric](pred.astype(np.uint8), ref.astype(np.float32), spacing) == ours  # 0/1 masks too


def test_asd_is_directed_and_assd_pools_both_directions():
    pred = np.zeros((20, 20), bool)
    pred[5:9, 5:9] = True
    ref = np.zeros((20, 20), bool)
    ref[4:14, 4:16] = True
    d_pr, d_rp = surface_distances(pred, ref)
    assert asd(pred, ref) == pytest.approx(d_pr.mean()) == pytest.approx(binary.asd(pred, ref))
    assert asd(ref, pred) == pytest.approx(d_rp.mean()) == pytest.approx(binary.asd(ref, pred))
    assert asd(pred, ref) != pytest.approx(asd(ref, pred))
    pooled = (d_pr.sum() + d_rp.sum()) / (d_pr.size + d_rp.size)
    assert assd(pred, ref) == pytest.approx(pooled) == pytest.approx(assd(ref, pred))
    assert assd(pred, ref) != pytest.approx((d_pr.mean() + d_rp.mean()) / 2)  # weighted by surface size


# --- the max-of-directed-percentiles option --------------------------------------------------------------------------

def test_hd95_max_mode_differs_from_pooled_on_a_stray_line():
    ref = np.zeros((40, 40), bool)
    ref[5:15, 5:15] = True  # 36 surface pixels
    pred = ref.copy()
    pred[34, 30:33] = True  # 3 stray pixels: 3/39 of pred's surface, 3/75 of both surfaces pooled
    brute = brute_metrics(pred, ref, (1.0, 1.0))
    assert hd95(pred, ref) == pytest.approx(brute["hd95"]) == pytest.approx(0.0)
    assert hd95(pred, ref, mode="max") == pytest.approx(brute["hd95_max"])
    assert hd95(pred, ref, mode="max") > 20
    assert hd95(ref, pred, mode="max") == hd95(pred, ref, mode="max")  # symmetric


@pytest.mark.parametrize("seed", range(4))
def test_hd95_max_mode_is_never_below_pooled(seed):
    pred, ref = random_masks(seed, (16, 16, 12))
    spacing = (0.8, 0.8, 1.6)
    assert hd95(pred, ref, spacing, mode="max") >= hd95(pred, ref, spacing)
    assert surface_metrics(pred, ref, spacing, hd95_mode="max")["hd95"] == hd95(pred, ref, spacing, mode="max")
    assert hd95(pred, ref, spacing, mode="max") == pytest.approx(brute_metrics(pred, ref, spacing)["hd95_max"])


# --- empty masks -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pred_empty, ref_empty, expected", [
    (True, True, 0.0), (True, False, math.inf), (False, True, math.inf)])
def test_empty_masks_never_raise(pred_empty, ref_empty, expected):
    full = sphere((10, 10, 10), (5, 5, 5), 3)
    empty = np.zeros_like(full)
    pred, ref = (empty if pred_empty else full), (empty if ref_empty else full)
    for metric in SURFACE_METRICS:
        assert FUNCTIONS[metric](pred, ref, (1.0, 2.0, 3.0)) == expected
        assert surface_metrics(pred, ref, crop=False)[metric] == expected
    assert hd95(pred, ref, mode="max") == expected
    assert surface_distances(pred, ref) == (None, None)


# --- cropping --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("margin", [0, 1, 3, 50])
@pytest.mark.parametrize("seed", range(3))
def test_cropped_equals_uncropped(seed, margin):
    rng = np.random.default_rng(seed)
    small_pred, small_ref = random_masks(seed, (12, 14, 10))
    pred, ref = np.zeros((60, 50, 30), bool), np.zeros((60, 50, 30), bool)
    corner = rng.integers(0, [48, 36, 20]) if seed else (48, 0, 20)  # seed 0 touches the array's edges
    region = tuple(slice(c, c + n) for c, n in zip(corner, small_pred.shape))
    pred[region], ref[region] = small_pred, small_ref
    spacing = (0.7, 1.3, 2.1)
    cropped = surface_metrics(pred, ref, spacing, margin=margin)
    assert cropped == surface_metrics(pred, ref, spacing, crop=False)
    for metric in SURFACE_METRICS:
        assert FUNCTIONS[metric](pred, ref, spacing, margin=margin) == cropped[metric]


def test_crop_to_union_keeps_the_box_plus_margin():
    pred, ref = np.zeros((30, 30, 30), bool), np.zeros((30, 30, 30), bool)
    pred[5:8, 10:12, 20:21] = True
    ref[9:11, 3:4, 22:29] = True
    cropped_pred, cropped_ref = crop_to_union(pred, ref, margin=2)
    assert cropped_pred.shape == cropped_ref.shape == (11 - 5 + 4, 12 - 3 + 4, 30 - 18)  # z clipped at the edge
    assert cropped_pred.sum() == pred.sum() and cropped_ref.sum() == ref.sum()


# --- bad input -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spacing, message", [((1.0, 1.0), "one voxel size per axis"), ((1.0, 0.0, 1.0), "> 0"),
                                              ((1.0, -2.0, 1.0), "> 0"), ((1.0, math.nan, 1.0), "finite")])
def test_bad_spacing_is_a_clear_error(spacing, message):
    mask = sphere((8, 8, 8), (4, 4, 4), 2)
    with pytest.raises(LabkitInputError, match=message):
        hd95(mask, mask, spacing)


def test_shape_mismatch_and_unknown_mode_are_errors():
    with pytest.raises(LabkitInputError, match="differs"):
        assd(np.ones((4, 4), bool), np.ones((4, 5), bool))
    with pytest.raises(LabkitInputError, match="mode"):
        hd95(np.ones((4, 4), bool), np.ones((4, 4), bool), mode="mean")


@pytest.mark.parametrize("connectivity", [0, 4])
def test_connectivity_out_of_range_is_an_error(connectivity):
    mask = sphere((8, 8, 8), (4, 4, 4), 2)
    with pytest.raises(LabkitInputError, match="connectivity"):
        hd(mask, mask, connectivity=connectivity)


def test_full_connectivity_matches_medpy():
    pred, ref = random_masks(7, (14, 12, 10))
    for metric in SURFACE_METRICS:
        assert FUNCTIONS[metric](pred, ref, (0.9, 1.1, 1.3), connectivity=3) == pytest.approx(
            MEDPY[metric](pred, ref, voxelspacing=(0.9, 1.1, 1.3), connectivity=3), rel=1e-12)
