"""Reading every output format of single-view reconstruction networks: occupancy grids (.binvox, (R, R, R)
.npy/.npz), .npz archives, point text files, .stl and .glb meshes; the placement conventions, the refusals, and a
sphere given as grids, meshes and samples agreeing to within a bound derived from the geometry and sampling."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import trimesh

from dispersion_score import chamfer_matrix, load_shapes
from dispersion_score.cli import main
from dispersion_score.voxels import voxel_surface

RADIUS = 0.4


# ------------------------------------------------------------------------------------------- test helpers


def write_binvox(path, occupied, *, translate=(0.0, 0.0, 0.0), scale=1.0):
    """A .binvox file by its specification (patrickmin.com/binvox/binvox.html), written here rather than with
    trimesh so that the reader is checked against the format, not against its own writer: ASCII header, then
    (value, count <= 255) byte pairs over the voxels in x-z-y order (x slowest, y fastest)."""
    occupied = np.asarray(occupied, dtype=bool)
    size = occupied.shape[0]
    flat = occupied.transpose(0, 2, 1).ravel().astype(np.uint8)
    pairs = bytearray()
    start = 0
    while start < len(flat):
        value = flat[start]
        end = start
        while end < len(flat) and flat[end] == value and end - start < 255:
            end += 1
        pairs += bytes([value, end - start])
        start = end
    header = (
        f"#binvox 1\ndim {size} {size} {size}\ntranslate {translate[0]} {translate[1]} {translate[2]}\n"
        f"scale {scale}\ndata\n"
    )
    path.write_bytes(header.encode() + bytes(pairs))


def ball_grid(resolution, radius=RADIUS):
    """(R, R, R) bool: cells of the unit cube [-0.5, 0.5]^3 whose centre lies in the ball of ``radius``."""
    centres = (np.arange(resolution) + 0.5) / resolution - 0.5
    x, y, z = np.meshgrid(centres, centres, centres, indexing="ij")
    return x**2 + y**2 + z**2 <= radius**2


def nearest_squared(a, b):
    """Naive reference: for each point of a, the squared distance to its nearest point of b (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    out = np.empty(len(a))
    for start in range(0, len(a), 512):
        chunk = a[start : start + 512]
        out[start : start + 512] = ((chunk[:, None, :] - b[None, :, :]) ** 2).sum(-1).min(1)
    return out


def naive_exposed_faces(occupied):
    count = 0
    padded = np.pad(occupied, 1)
    for i, j, k in np.argwhere(padded):
        for di, dj, dk in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
            count += not padded[i + di, j + dj, k + dk]
    return count


# ------------------------------------------------------------------------------------------ the surface


def test_voxel_surface_is_the_closed_boundary_of_the_occupied_cells():
    rng = np.random.default_rng(0)
    occupied = rng.random((5, 6, 7)) < 0.4
    vertices, faces = voxel_surface(occupied, origin=np.array([1.0, -2.0, 0.5]), cell_size=0.25)
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    assert len(faces) == 2 * naive_exposed_faces(occupied)
    assert mesh.area == pytest.approx(naive_exposed_faces(occupied) * 0.25**2)
    # Outward normals: the divergence theorem gives the occupied volume (a wrong winding gives a negative one).
    assert mesh.volume == pytest.approx(occupied.sum() * 0.25**3)
    ball = trimesh.Trimesh(*voxel_surface(ball_grid(12)))  # merged vertices: a closed 2-manifold
    assert ball.is_watertight and ball.volume == pytest.approx(ball_grid(12).sum() / 12**3)


@pytest.mark.parametrize("index", [(0, 0, 0), (1, 2, 3), (3, 0, 2)])
def test_one_cell_lands_where_the_conventions_say(tmp_path, index):
    size = 4
    grid = np.zeros((size,) * 3, bool)
    grid[index] = True
    np.save(tmp_path / "cell.npy", grid)
    translate, scale = np.array([10.0, -3.0, 2.0]), 8.0
    write_binvox(tmp_path / "cell.binvox", grid, translate=translate, scale=scale)
    low_npy = -0.5 + np.array(index) / size  # the unit cube centred on the origin, axes x, y, z
    low_binvox = translate + scale * np.array(index) / size  # binvox: centres at (i + 0.5) / R * scale + t
    for name, low, side in (("cell.npy", low_npy, 1 / size), ("cell.binvox", low_binvox, scale / size)):
        points = load_shapes([tmp_path / name], num_points=3000)[0].astype(np.float64)
        np.testing.assert_allclose(points.min(0), low, atol=1e-3 * side)
        np.testing.assert_allclose(points.max(0), low + side, atol=1e-3 * side)


def test_binvox_and_array_grids_give_the_same_points(tmp_path):
    grid = ball_grid(16)
    np.save(tmp_path / "ball.npy", grid)
    np.savez(tmp_path / "ball.npz", occupancy=grid.astype(np.float32))
    write_binvox(tmp_path / "ball.binvox", grid, translate=(-0.5, -0.5, -0.5), scale=1.0)
    write_binvox(tmp_path / "moved.binvox", grid, translate=(1.0, 2.0, 3.0), scale=3.0)
    read = {name: load_shapes([tmp_path / name], num_points=500)[0] for name in ("ball.npy", "ball.npz", "ball.binvox")}
    np.testing.assert_array_equal(read["ball.npy"], read["ball.npz"])
    np.testing.assert_allclose(read["ball.npy"], read["ball.binvox"], atol=1e-6)
    moved = load_shapes([tmp_path / "moved.binvox"], num_points=500)[0]
    np.testing.assert_allclose(moved, (read["ball.npy"] + 0.5) * 3.0 + [1.0, 2.0, 3.0], atol=1e-5)


def test_probability_grids_are_thresholded(tmp_path):
    grid = np.zeros((4, 4, 4), np.float32)
    grid[0, 0, 0], grid[3, 3, 3] = 0.7, 0.3
    np.save(tmp_path / "p.npy", grid)
    high = load_shapes([tmp_path / "p.npy"], num_points=2000)[0]
    assert high.max() <= -0.25 + 1e-6  # only the 0.7 cell, in the low corner
    both = load_shapes([tmp_path / "p.npy"], num_points=2000, voxel_threshold=0.25)[0]
    assert both.max() == pytest.approx(0.5, abs=1e-6) and both.min() == pytest.approx(-0.5, abs=1e-6)


# ------------------------------------------------------------------------------------- points and meshes


def test_point_text_files(tmp_path):
    points = np.random.default_rng(1).normal(size=(50, 3))
    normals = np.random.default_rng(2).normal(size=(50, 3))
    np.savetxt(tmp_path / "p2m.xyz", np.hstack([points, normals]))  # Pixel2Mesh: x y z nx ny nz
    np.savetxt(tmp_path / "comma.txt", points, delimiter=",", header="x,y,z")
    np.savetxt(tmp_path / "plain.pts", points)
    for name in ("p2m.xyz", "comma.txt", "plain.pts"):
        read = load_shapes([tmp_path / name], num_points=None)[0]
        np.testing.assert_allclose(np.sort(read, axis=0), np.sort(points, axis=0).astype(np.float32), rtol=1e-6)


def test_stl_and_glb_meshes_with_scene_transforms(tmp_path):
    box = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    box.export(tmp_path / "box.stl")
    scene = trimesh.Scene()
    scene.add_geometry(box, transform=trimesh.transformations.translation_matrix([5.0, 0.0, 0.0]))
    scene.export(tmp_path / "moved.glb")
    stl, glb = load_shapes([tmp_path / "box.stl", tmp_path / "moved.glb"], num_points=4000)
    np.testing.assert_allclose(stl.min(0), [-0.5, -1.0, -1.5], atol=0.02)
    np.testing.assert_allclose(glb.min(0), [4.5, -1.0, -1.5], atol=0.02)
    np.testing.assert_allclose(glb.max(0), [5.5, 1.0, 1.5], atol=0.02)


# ------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("batch.npy", np.zeros((10, 2500, 3)), r"\(10, 2500, 3\).*batch of clouds"),
        ("logits.npy", np.full((8, 8, 8), 3.0), r"values in \[3, 3\].*sigmoid"),
        ("nan.npy", np.full((4, 4, 4), np.nan), r"NaN"),
        ("empty.npy", np.zeros((4, 4, 4), bool), r"no occupied cell"),
        ("wide.npy", np.zeros((3, 100)), r"channels first"),
        ("four.npy", np.zeros((2, 2, 2, 2)), r"\(2, 2, 2, 2\); expected points \(P, 3\) or an occupancy grid"),
    ],
)
def test_ambiguous_arrays_are_refused_naming_the_file(tmp_path, name, array, message):
    np.save(tmp_path / name, array)
    with pytest.raises(ValueError, match=message) as error:
        load_shapes([tmp_path / name])
    assert name in str(error.value)


def test_npz_archives_need_a_key_when_they_hold_several_arrays(tmp_path):
    points = np.random.default_rng(0).normal(size=(100, 3))
    np.savez(tmp_path / "onet.npz", points=points, normals=points)
    with pytest.raises(ValueError, match=r"onet.npz holds 2 arrays \(points, normals\).*--npz-key"):
        load_shapes([tmp_path / "onet.npz"])
    with pytest.raises(ValueError, match=r"onet.npz has no array 'occ'; it holds: points, normals"):
        load_shapes([tmp_path / "onet.npz"], npz_key="occ")
    read = load_shapes([tmp_path / "onet.npz"], npz_key="points", num_points=None)[0]
    np.testing.assert_allclose(np.sort(read, 0), np.sort(points, 0).astype(np.float32))
    np.save(tmp_path / "single.npy", points)
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(ValueError, match=r"single.npz is a single .npy array"):
        load_shapes([tmp_path / "single.npz"])


def test_bad_text_and_binvox_files_are_named(tmp_path):
    (tmp_path / "notes.txt").write_text("predictions of run 3\nsee wandb\n")
    (tmp_path / "wide.xyz").write_text("1 2 3 4 5\n1 2 3 4 5\n1 2 3 4 5\n")
    (tmp_path / "broken.binvox").write_bytes(b"#binvox 1\ndim 4 4\n")
    for name, message in (("notes.txt", "could not read point file"), ("wide.xyz", "channels first"),
                          ("broken.binvox", "could not read voxel grid")):  # fmt: skip
        with pytest.raises(ValueError, match=message) as error:
            load_shapes([tmp_path / name])
        assert name in str(error.value)
    with pytest.raises(ValueError, match="voxel_threshold"):
        load_shapes([tmp_path / "wide.xyz"], voxel_threshold=0.0)


# ------------------------------------------------------------------- one sphere, every format, one answer


def _face_plane_distance(mesh):
    """Smallest distance from the centre to a face's plane: the mesh lies within r - this of the sphere."""
    normals = np.cross(mesh.vertices[mesh.faces[:, 1]] - mesh.vertices[mesh.faces[:, 0]],
                       mesh.vertices[mesh.faces[:, 2]] - mesh.vertices[mesh.faces[:, 0]])  # fmt: skip
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return float(np.abs((normals * mesh.vertices[mesh.faces[:, 0]]).sum(1)).min())


def _sphere_files(tmp_path, n):
    """The sphere of radius 0.4 as each format, with for each: (its points' largest distance from the sphere δ,
    the area of the surface its points are drawn from)."""
    files = {}
    for resolution, kind in ((32, "binvox"), (64, "npy")):
        grid = ball_grid(resolution)
        path = tmp_path / f"grid{resolution}.{kind}"
        if kind == "binvox":
            write_binvox(path, grid, translate=(-0.5, -0.5, -0.5), scale=1.0)
        else:
            np.save(path, grid)
        # A cell is occupied iff its centre c has |c| <= r, and every point of a cell's surface lies within
        # √3/2·h of c; an exposed face also bounds an empty cell (|c'| > r). So each face point p has
        # r - √3/2·h < |p| <= r + √3/2·h.
        area = trimesh.Trimesh(*voxel_surface(grid), process=False).area
        files[path.name] = (math.sqrt(3) / 2 / resolution, area)
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=RADIUS)
    for suffix in ("stl", "glb"):
        mesh.export(tmp_path / f"mesh.{suffix}")
        files[f"mesh.{suffix}"] = (RADIUS - _face_plane_distance(mesh), mesh.area)
    rng = np.random.default_rng(7)
    directions = rng.normal(size=(n, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    np.savetxt(tmp_path / "samples.xyz", np.hstack([RADIUS * directions, directions]))
    files["samples.xyz"] = (1e-6, 4 * math.pi * RADIUS**2)  # exact up to float32 rounding
    return files


def _chamfer_bound(a, b, n):
    """Upper bound on Chamfer (mean squared nearest distance, both ways) between n points drawn from surfaces A
    and B that lie within δ_A, δ_B of the sphere S.

    For a ∈ A with radial projection s onto S: d(a, B) <= δ_A + δ_B + d(s, π(B)), π(B) = B projected onto S, so
    by Minkowski's inequality RMS_a d(a, B) <= δ_A + δ_B + RMS_s d(s, π(B)). π(B) is a set of n points on S with
    density at least n / area_B · (1 - δ_B / r)² (the radial projection of a surface within δ_B outside... inside
    the sphere shrinks areas by at most that); the squared distance from a point to the nearest of a planar
    Poisson set of density λ has mean 1 / (π λ). Its mean over n points fluctuates by about its value / √n:
    4 standard deviations are added.
    """
    (delta_a, area_a), (delta_b, area_b) = a, b

    def noise(area, delta):
        return area / (math.pi * n * (1 - delta / RADIUS) ** 2) * (1 + 4 / math.sqrt(n))

    one_way = (delta_a + delta_b + math.sqrt(noise(area_b, delta_b))) ** 2
    other_way = (delta_a + delta_b + math.sqrt(noise(area_a, delta_a))) ** 2
    return one_way + other_way


@pytest.mark.slow
def test_a_sphere_as_grids_meshes_and_samples_agrees_to_within_the_derived_bound(tmp_path):
    n = 3000
    files = _sphere_files(tmp_path, n)
    names = sorted(files)
    clouds = load_shapes([tmp_path / name for name in names], num_points=n, seed=3)
    reference = np.zeros((len(names), len(names)))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            reference[i, j] = reference[j, i] = (
                nearest_squared(clouds[i], clouds[j]).mean() + nearest_squared(clouds[j], clouds[i]).mean()
            )
            bound = _chamfer_bound(files[names[i]], files[names[j]], n)
            print(f"{names[i]} vs {names[j]}: Chamfer {reference[i, j]:.3g}, bound {bound:.3g}")
            assert reference[i, j] <= bound, f"{names[i]} vs {names[j]}: Chamfer {reference[i, j]:.3g} > {bound:.3g}"
    # The library's un-normalised Chamfer matrix is this reference.
    np.testing.assert_allclose(chamfer_matrix(clouds, normalize=False), reference, rtol=1e-4, atol=1e-7)
    # The bound is tight enough to fail: a sphere 10% smaller, as a mesh, is caught against the samples.
    small = trimesh.creation.icosphere(subdivisions=4, radius=0.9 * RADIUS)
    small.export(tmp_path / "small.stl")
    small_cloud = load_shapes([tmp_path / "small.stl"], num_points=n)[0]
    samples = clouds[names.index("samples.xyz")]
    chamfer = nearest_squared(small_cloud, samples).mean() + nearest_squared(samples, small_cloud).mean()
    print(f"radius 0.36 mesh vs samples: Chamfer {chamfer:.3g}")
    assert chamfer > _chamfer_bound(files["mesh.stl"], files["samples.xyz"], n)


def test_the_command_line_reads_grids_and_records_the_rule(tmp_path, capsys):
    folder = tmp_path / "predictions"
    folder.mkdir()
    np.save(folder / "a.npy", ball_grid(16))
    write_binvox(folder / "b.binvox", ball_grid(16, 0.3), translate=(-0.5, -0.5, -0.5), scale=1.0)
    np.savez(folder / "c.npz", occupancy=ball_grid(16, 0.2), image=np.zeros((2, 2)))
    status = main(["shapes", str(folder), "--k", "1", "--points", "200", "--npz-key", "occupancy", "--json",
                   "--no-progress"])  # fmt: skip
    document = json.loads(capsys.readouterr().out)
    assert status == 0 and document["settings"]["files"] == ["a.npy", "b.binvox", "c.npz"]
    conversion = document["settings"]["conversion"]
    assert conversion["npz_key"] == "occupancy" and "exposed faces" in conversion["rules"]["voxels"]
    status = main(["shapes", str(folder), "--k", "1", "--points", "200", "--no-progress"])
    assert status == 2 and "c.npz holds 2 arrays" in capsys.readouterr().err
