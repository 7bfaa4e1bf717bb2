"""Renderer benchmark: renders/s/core of the chosen renderer (Embree ray casting, adaptive anti-aliasing) and
the incumbent (Mitsuba 3 ``scalar_rgb``), silhouette agreement between them, projected wall time of the real
ShapeNet-13 yaw sets, and the overhead of the resumable runner against a plain loop.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.bench_render [--quick]

Everything runs in one process on one core (Embree, Mitsuba and NumPy each use one thread here), in the
same run, so the ratios hold on a noisy machine even when the absolute rates do not.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._meshes import ObjPart, chair_parts, lamp_parts, write_checker, write_mesh_tree, write_obj
from dataset.shapenet.camera import (
    View,
    field_of_view_degrees,
    format_disn_line,
    format_yaw_line,
    sample_r2n2_views,
    sample_yaw_view,
)
from dataset.shapenet.layout import YAW_RANGES
from dataset.shapenet.mesh import Mesh, load_mesh
from dataset.shapenet.render.renderer import BLENDER_LIGHTING, MeshRenderer
from dataset.shapenet.render.yaw_sets import YawRenderConfig, YawSettings, candidate_views, render_yaw_sets

REAL_SHAPES = 43_783
NODE_CORES = 64


def _best(function, repeat: int) -> float:
    """Median wall time of ``repeat`` calls (seconds)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def dense_mesh_folder(folder: Path, faces: int, seed: int = 0) -> Path:
    """A ShapeNet-sized OBJ: a chair whose seat is an icosphere-like dense part (about ``faces`` triangles),
    plus a textured cushion (512² texture) and plain parts."""
    import trimesh

    rng = np.random.default_rng(seed)
    parts = chair_parts(rng, textured=True)
    level = max(1, round(math.log(max(faces, 80) / 20, 4)))
    sphere = trimesh.creation.icosphere(subdivisions=level, radius=0.12)
    sphere.apply_translation([0.0, 0.2, 0.0])
    parts.append(ObjPart(np.asarray(sphere.vertices), sphere.faces.tolist(), "knob", (0.8, 0.7, 0.2)))
    folder.mkdir(parents=True, exist_ok=True)
    write_checker(folder / "checker.png", size=512, cells=16)
    write_obj(folder, parts)
    return folder


def mitsuba_scene(mesh: Mesh, view: View, size: int, spp: int):
    """The incumbent: Mitsuba 3 scalar_rgb, two-sided diffuse parts, the rig's two suns and a constant sky
    (Mitsuba's suns cast shadows: it cannot switch them off)."""
    import drjit as dr
    import mitsuba as mi

    mi.set_variant("scalar_rgb")
    dr.set_thread_count(1)
    scene: dict = {
        "type": "scene",
        "integrator": {"type": "direct"},
        "sensor": {
            "type": "perspective",
            "fov": field_of_view_degrees(),
            "fov_axis": "x",
            "to_world": mi.ScalarTransform4f().look_at(
                origin=[float(c) for c in view.centre()], target=[0.0, 0.0, 0.0], up=[0.0, 1.0, 0.0]
            ),
            "film": {
                "type": "hdrfilm",
                "width": size,
                "height": size,
                "pixel_format": "rgba",
                "rfilter": {"type": "box"},
            },
            "sampler": {"type": "stratified", "sample_count": spp, "seed": 0},
        },
        "sun": {
            "type": "directional",
            "direction": [-c for c in BLENDER_LIGHTING.sun_direction],
            "irradiance": {"type": "rgb", "value": math.pi},
        },
        "below": {
            "type": "directional",
            "direction": [0.0, 1.0, 0.0],
            "irradiance": {"type": "rgb", "value": math.pi / 2},
        },
        "sky": {"type": "constant", "radiance": {"type": "rgb", "value": 0.5}},
    }
    for index, part in enumerate(mesh.parts):
        props = mi.Properties()
        reflectance = {"type": "rgb", "value": list(part.color)}
        props["bsdf"] = mi.load_dict({"type": "twosided", "bsdf": {"type": "diffuse", "reflectance": reflectance}})
        shape = mi.Mesh(f"part{index}", len(part.vertices), len(part.faces), props=props)
        params = mi.traverse(shape)
        params["vertex_positions"] = type(params["vertex_positions"])(part.vertices.astype(np.float32).ravel())
        params["faces"] = type(params["faces"])(part.faces.astype(np.uint32).ravel())
        params.update()
        scene[f"part{index}"] = shape
    return mi.load_dict(scene)


def mitsuba_render(scene, spp: int) -> np.ndarray:
    import mitsuba as mi

    return np.array(mi.render(scene, spp=spp))


def bench_libraries(mesh: Mesh, size: int, spp: int, repeat: int) -> dict[str, float]:
    view = View(372.0, 25.0, 0.8)
    renderer = MeshRenderer(size, samples_per_pixel=spp)
    renderer.render(mesh, view)
    ours = _best(lambda: renderer.render(mesh, view), repeat)
    full = MeshRenderer(size, samples_per_pixel=spp, contrast_threshold=-1)  # plain s² supersampling
    full_time = _best(lambda: full.render(mesh, view), max(1, repeat // 2))
    scene_time = _best(lambda: mitsuba_scene(mesh, view, size, spp), max(1, repeat // 2))
    scene = mitsuba_scene(mesh, view, size, spp)
    mitsuba_time = _best(lambda: mitsuba_render(scene, spp), max(1, repeat // 2))
    alpha_ours = renderer.render(mesh, view)[..., 3] / 255.0
    alpha_mitsuba = np.clip(mitsuba_render(scene, spp)[..., 3], 0, 1)
    inter = ((alpha_ours > 0.5) & (alpha_mitsuba > 0.5)).sum()
    union = ((alpha_ours > 0.5) | (alpha_mitsuba > 0.5)).sum()
    return {
        "ours": ours,
        "ours_full": full_time,
        "mitsuba": mitsuba_time,
        "mitsuba_scene": scene_time,
        "iou": inter / union,
        "alpha_mad": float(np.abs(alpha_ours - alpha_mitsuba).mean()),
    }


def moderngl_time(mesh: Mesh, size: int, repeat: int) -> float | None:
    """Seconds per render with OpenGL (moderngl, headless EGL; llvmpipe on a CPU), 4x MSAA, flat colours
    only (no lighting): a lower bound of what a rasteriser would cost. None when moderngl or EGL is missing."""
    try:
        import moderngl

        context = moderngl.create_standalone_context(backend="egl")
    except Exception:  # noqa: BLE001 - not installed, or no libEGL/Mesa on this machine
        return None
    program = context.program(
        vertex_shader="#version 330\nin vec3 p; in vec3 c; uniform mat4 m; out vec3 k;"
        "void main(){ gl_Position = m * vec4(p, 1.0); k = c; }",
        fragment_shader="#version 330\nin vec3 k; out vec4 o; void main(){ o = vec4(k, 1.0); }",
    )
    view = View(372.0, 25.0, 0.8)
    near, far = 0.05, 10.0
    f = 2 * 35 / 32
    depth = [-(far + near) / (far - near), -2 * far * near / (far - near)]
    projection = np.array([[f, 0, 0, 0], [0, f, 0, 0], [0, 0, *depth], [0, 0, -1, 0]])
    world_to_camera = np.eye(4)
    world_to_camera[:3, :3] = view.rotation()
    world_to_camera[:3, 3] = -view.rotation() @ view.centre()
    matrix = (projection @ world_to_camera).astype("f4")

    def render() -> np.ndarray:
        corners = np.concatenate([part.vertices[part.faces].reshape(-1, 3) for part in mesh.parts])
        colours = np.concatenate([np.tile(part.color, (3 * len(part.faces), 1)) for part in mesh.parts])
        buffer = context.buffer(np.hstack([corners, colours]).astype("f4").tobytes())
        vao = context.vertex_array(program, [(buffer, "3f 3f", "p", "c")])
        target = context.framebuffer(
            color_attachments=[context.renderbuffer((size, size), 4, samples=4)],
            depth_attachment=context.depth_renderbuffer((size, size), samples=4),
        )
        resolved = context.framebuffer(color_attachments=[context.renderbuffer((size, size), 4)])
        target.use()
        context.enable(moderngl.DEPTH_TEST)
        context.clear(0, 0, 0, 0)
        program["m"].write(matrix.T.tobytes())
        vao.render()
        context.copy_framebuffer(resolved, target)
        image = np.frombuffer(resolved.read(components=4), np.uint8).reshape(size, size, 4)
        for item in (vao, buffer, target, resolved):
            item.release()
        return image

    render()
    return _best(render, repeat)


def bench_runner(root: Path, shapes: int, size: int, spp: int) -> tuple[float, float, int]:
    """(plain loop s, runner s, renders): the same shapes, 7 sets, first draws, files written plainly vs the
    runner (workers=1: checks, atomic writes, hashes, manifest, log)."""
    from dataset.image_encoding import encode_png  # the same bytes as the yaw sets' PNGs

    meshes = root / "ShapeNetCore.v1"
    written = write_mesh_tree(meshes, shapes)
    renderer = MeshRenderer(size, samples_per_pixel=spp)

    def plain() -> None:
        for synset, model_id in written:
            mesh = load_mesh(meshes / synset / model_id)
            for yaw in YAW_RANGES:
                view = candidate_views(0, yaw, synset, model_id, 1)[0]
                folder = root / "plain" / f"{yaw:03d}" / synset / model_id
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "00.png").write_bytes(encode_png(renderer.render(mesh, view)))
                (folder / "rendering_metadata_disn.txt").write_text(format_disn_line(view) + "\n")
                (folder / "rendering_metadata.txt").write_text(format_yaw_line(view) + "\n")

    def runner() -> None:
        config = YawRenderConfig(meshes, root / f"runner{time.perf_counter_ns()}", settings=YawSettings(size, spp),
                                 categories=("chair", "lamp"), progress=False)  # fmt: skip
        render_yaw_sets(config)

    plain()  # warm caches (imports, page cache)
    plain_times, runner_times = [], []
    for _ in range(5):  # interleaved: both see the same machine load
        plain_times.append(_best(plain, 1))
        runner_times.append(_best(runner, 1))
    return float(np.median(plain_times)), float(np.median(runner_times)), len(written) * len(YAW_RANGES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and shapes")
    args = parser.parse_args()
    logging.getLogger("dataset.shapenet.mesh").setLevel(logging.ERROR)  # the fixtures' missing textures
    repeat = 3 if args.quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("== libraries, 224², 9 samples per pixel, one core")
        print(f"{'mesh':<24}{'ours ms':>9}{'ours full SS ms':>17}{'mitsuba ms':>12}{'(+scene ms)':>13}"
              f"{'mitsuba/ours':>14}{'alpha IoU':>11}")  # fmt: skip
        rates = {}
        for label, faces in [("stand-in-like", 0), ("5k faces", 5000), ("50k faces", 50000)]:
            if faces:
                mesh = load_mesh(dense_mesh_folder(tmp / f"dense{faces}", faces))
            else:
                mesh = load_mesh(write_obj(tmp / "small", lamp_parts(np.random.default_rng(0))))
            r = bench_libraries(mesh, 224, 9, repeat)
            rates[label] = r
            print(f"{label + f' ({mesh.face_count} tri)':<24}{r['ours'] * 1e3:>9.1f}{r['ours_full'] * 1e3:>17.1f}"
                  f"{r['mitsuba'] * 1e3:>12.1f}{r['mitsuba_scene'] * 1e3:>13.1f}{r['mitsuba'] / r['ours']:>14.2f}"
                  f"{r['iou']:>11.4f}")  # fmt: skip
            gl = moderngl_time(mesh, 224, repeat)
            if gl is not None:
                print(f"{'':<24}moderngl/EGL (flat colours, 4x MSAA): {gl * 1e3:.1f} ms, ours/gl {r['ours'] / gl:.2f}")

        if moderngl_time(mesh, 8, 1) is None:
            print("moderngl: not installed or no EGL here (pip install moderngl; needs the system's libEGL + Mesa)")

        print("\n== load + 7 renders + PNG per shape (one core), projected real ShapeNet-13 yaw sets")
        for faces in (5000, 50000):
            folder = tmp / f"dense{faces}"
            load = _best(lambda folder=folder: load_mesh(folder), repeat)
            mesh = load_mesh(folder)
            renderer = MeshRenderer(224, samples_per_pixel=9)
            rng = np.random.default_rng(0)
            views = [sample_yaw_view(rng, 90) for _ in range(7)]
            from dataset.image_encoding import encode_png  # the same bytes as the yaw sets' PNGs

            def render_all(renderer=renderer, mesh=mesh, views=views) -> None:
                for view in views:
                    encode_png(renderer.render(mesh, view))

            render = _best(render_all, repeat) / 7
            per_shape = load + 7 * render
            wall = REAL_SHAPES * per_shape / NODE_CORES
            print(f"{mesh.face_count:>6} tri: load {load * 1e3:.0f} ms, render+PNG {render * 1e3:.1f} ms -> "
                  f"{7 / per_shape:.1f} renders/s/core; 7 x {REAL_SHAPES} renders on {NODE_CORES} cores: "
                  f"{wall / 60:.1f} min")  # fmt: skip

        print("\n== stand-in quick preset (one core): R2N2 views at 137² and yaw views at 224²")
        mesh = load_mesh(write_obj(tmp / "chair", chair_parts(np.random.default_rng(2), textured=False)))
        r137 = MeshRenderer(137, samples_per_pixel=9)
        views = sample_r2n2_views(np.random.default_rng(0), 24)
        t137 = _best(lambda: [r137.render(mesh, v) for v in views], repeat) / 24
        r224 = MeshRenderer(224, samples_per_pixel=9)
        t224 = _best(lambda: [r224.render(mesh, v) for v in views[:7]], repeat) / 7
        shapes = 300
        total = shapes * (24 * t137 + 7 * t224)
        print(f"137²: {t137 * 1e3:.1f} ms/render, 224²: {t224 * 1e3:.1f} ms/render; {shapes} shapes x (24 + 7) "
              f"renders: {total:.0f} core-s = {total / 2:.0f} s on 2 cores (rendering only)")  # fmt: skip

        print("\n== runner overhead (workers=1, 7 sets, stand-in-like shapes at 224²)")
        plain, runner, renders = bench_runner(tmp / "runner", 4 if args.quick else 10, 224, 9)
        print(
            f"{renders} renders: plain loop {plain:.2f} s, runner {runner:.2f} s, runner/plain = {runner / plain:.3f}"
        )


if __name__ == "__main__":
    main()
